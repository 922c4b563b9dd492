"""imagenet: ImageNet ILSVRC-2012 from its sources to a training-ready tree."""

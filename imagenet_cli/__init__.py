"""imagenet: ImageNet ILSVRC-2012 from its sources to a training-ready tree.

The library behind the ``imagenet`` command. Each command is one function here taking plain
values and returning a result object; nothing in the library prints.
"""

__version__ = "0.1.0.dev0"

from . import catalogue
from .download import DownloadResult, download_sample
from .errors import ImagenetError
from .info import RootState, describe_root
from .progress import Progress

__all__ = [
    "DownloadResult",
    "ImagenetError",
    "Progress",
    "RootState",
    "catalogue",
    "describe_root",
    "download_sample",
]

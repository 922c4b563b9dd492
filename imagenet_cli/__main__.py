"""``python -m imagenet_cli``: the same program as the ``imagenet`` command."""

from .cli.entry import main

main()

"""imagenet: ImageNet ILSVRC-2012 from its sources to a training-ready tree.

The library behind the ``imagenet`` command. Each command is one function here taking plain
values and returning a result object; nothing in the library prints.
"""

from typing import Any

__version__ = "0.2.0.dev0"

# The public API, imported on first use (PEP 562): `imagenet --help` and tab completion import
# this package too, and must not pay for modules they do not run. The stages are packages named
# by nouns (trees, checks, exports, subsets), so no submodule ever shadows a function here.
_EXPORTS = {
    "catalogue": ("catalogue", None),
    "class_index": ("class_files", "class_index"),
    "DownloadResult": ("download", "DownloadResult"),
    "download_kaggle": ("download", "download_kaggle"),
    "download_official": ("download", "download_official"),
    "download_sample": ("download", "download_sample"),
    "ExportResult": ("exports", "ExportResult"),
    "export": ("exports", "export"),
    "ImagenetError": ("errors", "ImagenetError"),
    "RootState": ("info", "RootState"),
    "describe_root": ("info", "describe_root"),
    "PrepareResult": ("trees", "PrepareResult"),
    "prepare": ("trees", "prepare"),
    "Recipe": ("trees.resize", "Recipe"),
    "Progress": ("progress", "Progress"),
    "SubsetResult": ("subsets", "SubsetResult"),
    "subset": ("subsets", "subset"),
    "VerifyReport": ("checks", "VerifyReport"),
    "verify": ("checks", "verify"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'imagenet_cli' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    return module if attribute is None else getattr(module, attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

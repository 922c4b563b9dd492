"""imagenet: ImageNet ILSVRC-2012 from its sources to a training-ready tree.

The library behind the ``imagenet`` command. Each command is one function here taking plain
values and returning a result object; nothing in the library prints.
"""

from typing import Any

__version__ = "0.1.0.dev0"

# The public API, imported on first use (PEP 562): `imagenet --help` and tab completion import
# this package too, and must not pay for modules they do not run.
_EXPORTS = {
    "catalogue": ("catalogue", None),
    "class_index": ("class_files", "class_index"),
    "DownloadResult": ("download", "DownloadResult"),
    "download_kaggle": ("download", "download_kaggle"),
    "download_official": ("download", "download_official"),
    "download_sample": ("download", "download_sample"),
    "ExportResult": ("export", "ExportResult"),
    "export": ("export", "export"),
    "ImagenetError": ("errors", "ImagenetError"),
    "RootState": ("info", "RootState"),
    "describe_root": ("info", "describe_root"),
    "PrepareResult": ("prepare", "PrepareResult"),
    "prepare": ("prepare", "prepare"),
    "Recipe": ("prepare.resize", "Recipe"),
    "Progress": ("progress", "Progress"),
    "SubsetResult": ("subset", "SubsetResult"),
    "subset": ("subset", "subset"),
    "VerifyReport": ("verify", "VerifyReport"),
    "verify": ("verify", "verify"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'imagenet_cli' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    _claim_back_names()
    return module if attribute is None else getattr(module, attribute)


def _claim_back_names() -> None:
    """``prepare``, ``verify``, ``subset`` and ``export`` are functions here and modules below:
    importing a module sets it on this package under its own name, hiding the function. Put the
    functions back for every module loaded so far, and keep them as the package's attributes, so
    ``imagenet_cli.prepare(...)`` keeps working once ``imagenet_cli.prepare.resize`` is imported."""
    import sys

    for name, (module_name, attribute) in _EXPORTS.items():
        module = sys.modules.get(f"{__name__}.{module_name}")
        if attribute is not None and module is not None:
            globals()[name] = getattr(module, attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

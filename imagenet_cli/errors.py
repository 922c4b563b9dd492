"""The one exception hierarchy of the library, and the process exit codes the CLI uses.

Library code raises these with a message that says what happened, naming the file or value.
The CLI (``imagenet_cli.cli.errors``) maps each class to an exit code and a hint saying what to
do next, in one table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import NoReturn


class ExitStatus(IntEnum):
    """The process exit codes, documented in the README ("Exit codes"); scripts rely on them."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PROBLEMS = 3  # the command ran to the end and found problems (bad images, bad checksums)
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT; SIGTERM 143 and SIGHUP 129 likewise (128 + signal)


EXIT_OK, EXIT_ERROR, EXIT_USAGE = ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE
EXIT_PROBLEMS, EXIT_INTERRUPTED = ExitStatus.PROBLEMS, ExitStatus.INTERRUPTED


_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#]+)[?#]\S*")


def without_queries(text: str) -> str:
    """``text`` with every URL's query string cut off: a signed URL's query is a credential, and
    no message, log line or record of ours prints one."""
    return _URL_QUERY.sub(r"\1", text)


# A message names a parameter of the caller as ``{parameter}``: a Python caller reads the
# parameter's name, the CLI the option a user types for it (cli/errors.py spells them).
_PARAMETER = re.compile(r"\{([a-z][a-z_]*)\}")


def spell_parameters(text: str, spell: Callable[[str], str]) -> str:
    return _PARAMETER.sub(lambda match: spell(match.group(1)), text)


def _as_named(parameter: str) -> str:
    return parameter


class ImagenetError(Exception):
    """Base of every error the library raises on purpose."""

    def spelled(self, spell: Callable[[str], str] = _as_named) -> str:
        """The message, each ``{parameter}`` it names spelled by ``spell``."""
        return spell_parameters(super().__str__(), spell)

    def __str__(self) -> str:
        return self.spelled()


class InvalidArgumentError(ImagenetError):
    """A value passed in (an option, a class name, a size) cannot be used.

    ``parameter`` names the argument it came in (``quality``, ``source``); the message then says
    what is wrong with it and leaves the name out, so that each caller names it its own way: a
    Python caller reads ``quality 200 is outside 1–100``, the CLI puts the option in its place
    (``--quality 200 …``, cli/errors.py)."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    @property
    def detail(self) -> str:
        return str(self.args[0]) if self.args else ""

    def spelled(self, spell: Callable[[str], str] = _as_named) -> str:
        detail = spell_parameters(self.detail, spell)
        return f"{spell(self.parameter)} {detail}" if self.parameter else detail


class UnknownClassError(InvalidArgumentError):
    """A WNID, index, ILSVRC2012_ID or name that matches no ILSVRC-2012 class."""


class MissingInputError(ImagenetError):
    """Something the command needs to read is not where it should be."""


class ShardsNotATreeError(MissingInputError):
    """A folder of shards (WebDataset, Parquet) where a tree of image files is needed; ``folder``
    is that folder, which ``prepare`` can read into a tree."""

    def __init__(self, message: str, folder: Path | str = "FOLDER") -> None:
        super().__init__(message)
        self.folder = folder


class OverwriteRefusedError(ImagenetError):
    """Writing would replace a file this tool did not make (or made differently).

    ``parameter`` names the argument that puts the output elsewhere (``out``, ``into``, ``root``);
    ``forceable``: the command replaces the file when asked to (``force``)."""

    def __init__(self, message: str, parameter: str = "root", forceable: bool = False) -> None:
        super().__init__(message)
        self.parameter, self.forceable = parameter, forceable


class UnsuitableTreeError(ImagenetError):
    """A tree cannot give what was asked of it (Downsampled ImageNet from resized images)."""


class DamagedTreeError(ImagenetError):
    """A file a tree's manifest lists is missing or unreadable."""


class ArchiveError(ImagenetError):
    """An archive is unreadable, truncated, or holds something it must not."""


def no_record(path: Path) -> NoReturn:
    """For a caller that needs a record we write (``tree.json``, ``NAME.record.json``) and finds none."""
    raise ArchiveError(f"{path} does not exist")


class LabelConflictError(ArchiveError):
    """Two sources of val labels (the devkit, Kaggle's LOC_val_solution.csv) disagree."""


class InputChangedError(ImagenetError):
    """An input file was replaced or changed while a command was reading it (a download landing
    by rename): nothing made from the two versions is mixed, and a re-run reads the new one."""


class LockHeldError(ImagenetError):
    """Another process is writing the same file or tree (and we were told not to wait)."""


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM from a scheduler, SIGHUP from a closed
    terminal): handled like Ctrl-C, so finished work is kept and workers are stopped."""

    def __init__(self, signal_number: int, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_number, self.signal_name = signal_number, signal_name


class MissingExtraError(ImagenetError):
    """A feature needs an optional extra that is not installed; the message names it."""

    @classmethod
    def of(cls, feature: str, package: str, extra: str) -> MissingExtraError:
        return cls(f"{feature} needs {package}: {install_command(extra)}")


def install_command(extra: str) -> str:
    """The pip line that adds ``extra`` to this copy the way it was installed: from its checkout
    (pip records the folder, PEP 610) or from the package index."""
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlsplit

    # Every copy on the path: a checkout's own imagenet_cli.egg-info can come first.
    for distribution in metadata.distributions(name="imagenet-cli"):
        try:
            direct = json.loads(distribution.read_text("direct_url.json") or "null")
        except ValueError:
            continue
        if isinstance(direct, dict) and str(direct.get("url", "")).startswith("file://"):
            return f"pip install '{unquote(urlsplit(direct['url']).path)}[{extra}]'"
    return f"pip install 'imagenet-cli[{extra}]'"


class ClusterError(ImagenetError):
    """A Dask cluster cannot be reached, or a worker cannot take shards (the message names it)."""


class ClusterUnreachableError(ClusterError):
    """No Dask scheduler answers at the address given."""


class ShardCrashError(ClusterError):
    """Shards kept killing the workers that ran them (Dask's KilledWorker); the rest are done."""


class InsufficientSpaceError(ImagenetError):
    """Not enough free disk for what the command is about to write."""


class StorageError(ImagenetError):
    """Object storage (a bucket named by a URL) refused or failed a request."""


class StorageCredentialsError(StorageError):
    """No credentials for the store were found, or the store does not accept them."""


class StorageAccessDeniedError(StorageError):
    """The store answered AccessDenied for the bucket or prefix."""


class StorageNotFoundError(StorageError):
    """The bucket named does not exist."""


class StorageUnreachableError(StorageError):
    """The storage endpoint does not answer (a wrong endpoint URL, or no network)."""


class StorageUnsupportedError(StorageError):
    """The store cannot do what writing there needs (conditional writes, for one writer per prefix)."""


class DownloadError(ImagenetError):
    """A transfer could not complete; what was fetched so far is kept for the next run."""


class RemoteNotFoundError(DownloadError):
    """The server has no file at that URL (HTTP 404/410)."""


class AccessDeniedError(DownloadError):
    """The server refused the request (HTTP 401/403): a login, cookie or header is needed."""


class HubAccessError(AccessDeniedError):
    """The Hugging Face hub refused a gated dataset: no valid token, or its terms not accepted."""


class RemoteChangedError(DownloadError):
    """The file on the server is not the one recorded or published (size or validator differ)."""


class ChecksumMismatchError(DownloadError):
    """A complete download does not hash to its published checksum."""


class KaggleCredentialsError(DownloadError):
    """No Kaggle credentials were found, or Kaggle rejected them (HTTP 401)."""


class KaggleRulesError(DownloadError):
    """Kaggle answers 403 until the competition's rules are accepted in a browser."""

"""Every error a user can meet, mapped in one table to an exit code and what to try next.

A message reads ``imagenet: error: <what happened> — try <what to do>``, on one line of stderr.
Tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AccessDeniedError,
    ArchiveError,
    ChecksumMismatchError,
    ClusterError,
    ClusterUnreachableError,
    DamagedTreeError,
    DownloadError,
    HubAccessError,
    ImagenetError,
    InputChangedError,
    InsufficientSpaceError,
    InvalidArgumentError,
    KaggleCredentialsError,
    KaggleRulesError,
    LabelConflictError,
    LockHeldError,
    MissingExtraError,
    MissingInputError,
    OverwriteRefusedError,
    RemoteChangedError,
    RemoteNotFoundError,
    ShardCrashError,
    ShardsNotATreeError,
    Stopped,
    StorageAccessDeniedError,
    StorageCredentialsError,
    StorageError,
    StorageNotFoundError,
    StorageUnreachableError,
    StorageUnsupportedError,
    UnknownClassError,
    UnsuitableTreeError,
    without_queries,
)


@dataclass(frozen=True)
class ErrorRule:
    error: type[BaseException]
    exit_code: int
    hint: str | Callable[[Any], str]  # the text after "try", or how to make it from the error's fields
    errno: int | None = None  # for OSError: match only this errno


def _elsewhere(error: OverwriteRefusedError) -> str:
    option = f"--{error.parameter.replace('_', '-')}"
    return (
        f"--force to replace it, or another {option}"
        if error.forceable
        else f"another {option}, or moving that folder or file away first"
    )


# First matching row wins: narrow kinds before broad ones.
ERROR_TABLE = (
    ErrorRule(UnknownClassError, EXIT_USAGE, "`imagenet classes WORDS` to search the class names"),
    ErrorRule(InvalidArgumentError, EXIT_USAGE, "`imagenet COMMAND --help` for the accepted values"),
    ErrorRule(
        ShardsNotATreeError,
        EXIT_ERROR,
        lambda error: f"`imagenet prepare --from {error.folder} --size full` to make a tree of them first",
    ),
    ErrorRule(MissingInputError, EXIT_ERROR, "`imagenet info` to see what the root holds, or another --root"),
    ErrorRule(OverwriteRefusedError, EXIT_ERROR, _elsewhere),
    ErrorRule(UnsuitableTreeError, EXIT_ERROR, "`imagenet prepare --size full`, then export --from ROOT/full"),
    ErrorRule(
        DamagedTreeError,
        EXIT_ERROR,
        "`imagenet verify` on that tree, then the command that made it again, to repair it",
    ),
    ErrorRule(
        LabelConflictError,
        EXIT_ERROR,
        "`imagenet verify --deep` on the devkit and the Kaggle zip to find the damaged one",
    ),
    ErrorRule(ArchiveError, EXIT_ERROR, "deleting the file and downloading it again"),
    ErrorRule(
        InputChangedError,
        EXIT_ERROR,
        "the same command again: it keeps what is done and redoes what the new file changes",
    ),
    ErrorRule(MissingExtraError, EXIT_ERROR, "the pip install the message names, then the same command"),
    ErrorRule(
        ShardCrashError,
        EXIT_ERROR,
        "`imagenet verify --deep` on its archive; the same command finishes the other shards",
    ),
    ErrorRule(
        ClusterUnreachableError,
        EXIT_ERROR,
        "checking that the scheduler runs at that address (or --dask local for one here)",
    ),
    ErrorRule(
        ClusterError,
        EXIT_ERROR,
        "the same imagenet-cli version and the same mounts on every worker (README: More than one machine)",
    ),
    ErrorRule(LockHeldError, EXIT_ERROR, "again once it has finished, or without --no-wait to wait for it"),
    ErrorRule(
        InsufficientSpaceError,
        EXIT_ERROR,
        "freeing disk space (or writing elsewhere), then the same command: finished work is kept",
    ),
    ErrorRule(
        KaggleCredentialsError,
        EXIT_ERROR,
        "saving your token as ~/.kaggle/kaggle.json (chmod 600) or setting KAGGLE_API_TOKEN",
    ),
    ErrorRule(KaggleRulesError, EXIT_ERROR, "accepting the rules in a browser while logged in, then the same command"),
    ErrorRule(HubAccessError, EXIT_ERROR, "`hf auth login` (or HF_TOKEN), then the terms on the page it names"),
    ErrorRule(
        AccessDeniedError, EXIT_ERROR, "logging in on the site, then --cookies cookies.txt or --header 'Name: value'"
    ),
    ErrorRule(RemoteNotFoundError, EXIT_ERROR, "checking --base-url: a mirror must use the official file names"),
    ErrorRule(
        ChecksumMismatchError, EXIT_ERROR, "the same command again; if it repeats, the source serves other bytes"
    ),
    ErrorRule(RemoteChangedError, EXIT_ERROR, "the same command again; a mirror with other files needs --checksums"),
    ErrorRule(
        StorageCredentialsError,
        EXIT_ERROR,
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or the store's own login), then the same command",
    ),
    ErrorRule(StorageAccessDeniedError, EXIT_ERROR, "credentials allowed to list, read and write that prefix"),
    ErrorRule(StorageNotFoundError, EXIT_ERROR, "checking the bucket's name, or creating it first"),
    ErrorRule(
        StorageUnreachableError,
        EXIT_ERROR,
        "checking AWS_ENDPOINT_URL (or --storage-option endpoint_url=URL) and the network",
    ),
    ErrorRule(StorageUnsupportedError, EXIT_ERROR, "an s3:// URL (S3 or an S3-compatible store) or a folder as --out"),
    ErrorRule(StorageError, EXIT_ERROR, "the same command again: what was uploaded whole is kept"),
    ErrorRule(DownloadError, EXIT_ERROR, "the same command again: what was fetched is kept and resumes"),
    ErrorRule(ImagenetError, EXIT_ERROR, "`--debug` for details"),
    ErrorRule(OSError, EXIT_ERROR, "freeing disk space, then the same command: finished work is kept", errno.ENOSPC),
    ErrorRule(PermissionError, EXIT_ERROR, "checking the permissions of that path, or another --root"),
    ErrorRule(OSError, EXIT_ERROR, "checking that path and the disk it is on"),
    ErrorRule(KeyboardInterrupt, EXIT_INTERRUPTED, "the same command again: finished work is kept"),
    ErrorRule(Exception, EXIT_ERROR, "`--debug` and report the traceback: this is a bug"),
)


def rule_for(error: BaseException) -> ErrorRule:
    for rule in ERROR_TABLE:
        if isinstance(error, rule.error) and (rule.errno is None or getattr(error, "errno", None) == rule.errno):
            return rule
    raise error  # not an Exception (SystemExit and the like): let it through


def exit_code_for(error: BaseException) -> int:
    """The process exit code for ``error``: 128 + the signal for a stop by signal, as shells report it."""
    if isinstance(error, Stopped):
        return 128 + error.signal_number
    return rule_for(error).exit_code


def message_for(error: BaseException, command: str = "COMMAND") -> str:
    """The one line the user sees for ``error`` in ``imagenet COMMAND``."""
    rule = rule_for(error)
    if isinstance(error, Stopped):
        return f"imagenet: stopped by {error.signal_name} — try {rule.hint}"
    if isinstance(error, KeyboardInterrupt):
        return f"imagenet: interrupted — try {rule.hint}"
    what = without_queries(_in_options(error)) or type(error).__name__
    if not isinstance(error, (ImagenetError, OSError)):
        what = f"unexpected {type(error).__name__}: {what}"
    hint = rule.hint if isinstance(rule.hint, str) else rule.hint(error)
    return f"imagenet: error: {what} — try {hint.replace('COMMAND', command)}"


# The library's parameter names whose option is spelled otherwise; every other is --name-with-dashes.
OPTIONS = {
    "source": "--from",
    "sizes": "--size",
    "mode": "--resize",
    "headers": "--header",
    "image_format": "--format",
    "storage_options": "--storage-option",
    "upscale": "--no-upscale",
}


def option_for(parameter: str) -> str:
    return OPTIONS.get(parameter, "--" + parameter.replace("_", "-"))


def _in_options(error: BaseException) -> str:
    """The error's text, each parameter it names spelled as the option a user of the CLI typed."""
    if isinstance(error, ImagenetError):
        return error.spelled(option_for)
    return str(error)

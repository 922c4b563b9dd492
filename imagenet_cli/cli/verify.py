"""``imagenet verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..checks import VerifyReport, verify
from ..checks.findings import MAX_LISTED, Check, Status
from ..hashing import Algorithm
from ..storage import local_or_url, parse_options
from .common import Rendering, Session, StorageOptions, command, file_option, human_bytes, jsonable, print_table

EXAMPLES = """\
Examples:

\b
  imagenet verify                                  every archive and tree under the root
  imagenet verify imagenet/downloads/ILSVRC2012_img_val.tar --deep
  imagenet verify --checksums MD5SUMS              a mirror's own md5sum list
  imagenet verify imagenet/224 --json              one tree, as JSON for a script
  imagenet verify --record                         remember what it hashed: the next check is instant
  imagenet verify s3://bucket/imagenet-wds         an export in object storage, against its export.json
"""
SHOWN_PROBLEMS = 50  # in the text output; --json lists every kept problem


@command(
    "verify",
    Rendering(
        text=lambda report: _print_report(report),
        json=lambda report: _as_json(report),
        quiet=lambda report: [check.where for check in report.checks if check.problem_count],
        problems=lambda report: not report.ok,
    ),
)
def verify_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Archives, trees, exports or data roots to check (default: everything under --root); an export "
            "in object storage by its URL (s3://bucket/prefix).",
            show_default=False,
            metavar="[PATH]...",
        ),
    ] = None,
    checksums: Annotated[
        Path | None,
        file_option("Expected digests as md5sum/sha256sum/xxhsum print them ('<hex>  <name>'); they take precedence."),
    ] = None,
    algo: Annotated[
        Algorithm | None,
        typer.Option(help="The algorithm of --checksums, when the digest length does not tell it.", show_default=False),
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also read every archive member and decode every image.")
    ] = False,
    rehash: Annotated[
        bool, typer.Option("--rehash", help="Re-read archives even when unchanged since their last check.")
    ] = False,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Write a record (NAME.record.json) for archives hashed without one, so the next check is instant.",
        ),
    ] = False,
    storage_options: StorageOptions = None,
    *,
    ui: Session,
) -> VerifyReport:
    """Check archives and trees are intact and labelled right.

    Archives against their expected digests (a --checksums file, the download record, or the
    published MD5) and the real archives' structure; trees against their manifest, their class
    folders and the val labels. Exit code 3 when anything is wrong; every problem names its file.
    """
    return verify(
        ui.root,
        paths=[local_or_url(path) for path in paths] if paths else None,
        storage_options=parse_options(storage_options),
        checksums=checksums,
        algorithm=algo.value if algo else None,
        deep=deep,
        rehash=rehash,
        record=record,
        progress=ui.progress,
    )


def _as_json(report: VerifyReport) -> dict[str, Any]:
    checks = [{"status": check.status, **jsonable(check)} for check in report.checks]
    return {"ok": report.ok, "problem_count": report.problem_count, "checks": checks}


def _print_report(report: VerifyReport) -> None:
    rows = []
    for check in report.checks:
        size = human_bytes(check.counts["bytes"]) if "bytes" in check.counts else _images(check)
        rows.append((check.where, check.kind, size, check.status, check.problem_count))
    print_table(("path", "kind", "size", "status", "problems"), rows)
    groups = _grouped(report)
    if groups:
        typer.echo("\nproblems:")
    for (name, kind, detail), wheres in groups[:SHOWN_PROBLEMS]:
        if len(wheres) == 1:
            typer.echo(f"  {name}: {kind}: {wheres[0]}: {detail}")
        else:
            listed = ", ".join(w.rsplit(":", 1)[-1] for w in wheres[:3])
            typer.echo(
                f"  {name}: {len(wheres):,} × {kind}: {detail}: "
                f"{listed}{', …' if len(wheres) > 3 else ''} (--json lists each)"
            )
    if len(groups) > SHOWN_PROBLEMS:
        typer.echo(f"  … and {len(groups) - SHOWN_PROBLEMS:,} more kinds of problem (--json lists them)")
    kept = sum(len(check.problems) for check in report.checks)
    if report.problem_count > kept:
        typer.echo(
            f"  (--json lists up to {MAX_LISTED:,} of each kind per "
            f"check; {report.problem_count - kept:,} more were counted)"
        )
    unknown = [c for c in report.checks if c.status is Status.UNKNOWN]
    if unknown:
        typer.echo(
            f"\n{len(unknown)} checked for structure only: nothing to compare their bytes with (try --checksums)"
        )
    typer.echo(f"\n{'all good' if report.ok else f'{report.problem_count:,} problems'} in {len(report.checks)} checked")


def _grouped(report: VerifyReport) -> list[tuple[tuple[str, str, str], list[str]]]:
    """Problems of one cause together: one line for 992 missing class tars, not 992 lines."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for check in report.checks:
        for problem in check.problems:
            groups.setdefault((check.name, problem.kind, problem.detail), []).append(problem.where)
    return list(groups.items())


def _images(check: Check) -> str:
    images = sum(v for k, v in check.counts.items() if k.endswith("_images"))
    return f"{images:,} images"

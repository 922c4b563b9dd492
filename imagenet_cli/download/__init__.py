"""``imagenet download``: fetch archives into ``ROOT/downloads/``, recording their checksums.

Three sources, one outcome: every archive lands under its final name only when complete (and, where
a checksum is published, checked), with ``<name>.record.json`` beside it. A re-run skips what is
already there and recorded, without touching the network, and resumes what is half done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import archives, atomic, catalogue, evalsets, hashing, locks, sample
from ..atomic import Finish
from ..errors import InvalidArgumentError, OverwriteRefusedError
from ..layout import Root, free_bytes
from ..progress import SILENT, Progress
from ..records import (
    JOURNAL_SUFFIX,
    KAGGLE_PARTIAL_SUFFIX,
    PART_SUFFIX,
    DownloadRecord,
    read_record,
    write_record,
)
from ..sample import evalsets as miniatures
from ..selection import choose
from . import hub, kaggle, official
from .transfer import (
    Endpoint,
    Plan,
    Remote,
    RetryPolicy,
    check_free_space,
    http_client,
    plan_transfer,
    run_transfer,
    url_without_query,
)

log = logging.getLogger(__name__)

DEFAULT_CONNECTIONS = 4

# What happened to each file.
KEPT = "kept"  # already complete and recorded: nothing fetched
WRITTEN = "written"  # generated (the sample)
DOWNLOADED = "downloaded"
RESUMED = "resumed"  # completed from an earlier run's partial file
WOULD_FETCH = "would fetch"  # --dry-run
WOULD_RESUME = "would resume"  # --dry-run


@dataclass(frozen=True)
class FetchedFile:
    name: str
    path: Path
    bytes: int | None
    status: str
    md5: str | None = None
    xxh3_64: str | None = None
    transferred: int = 0  # bytes received in this run (with --dry-run: that would be received)


@dataclass(frozen=True)
class DownloadResult:
    source: str
    downloads: Path
    files: list[FetchedFile]
    free_bytes: int = 0
    dry_run: bool = False
    to_fetch_bytes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        pending = (f.transferred for f in self.files if f.status in (WOULD_FETCH, WOULD_RESUME))
        object.__setattr__(self, "to_fetch_bytes", sum(pending))


def _recorded(path: Path, record: DownloadRecord, status: str, transferred: int = 0) -> FetchedFile:
    return FetchedFile(path.name, path, record.size, status, record.md5, record.xxh3_64, transferred)


# --- the sample --------------------------------------------------------------------------------


def download_sample(
    root: Path,
    *,
    layout: str = "official",
    classes: list[str] | None = None,
    train_per_class: int = 10,
    val_per_class: int = 5,
    test_images: int = 10,
    seed: int = 0,
    scale: float | None = None,
    wait: bool = True,
    progress: Progress = SILENT,
) -> DownloadResult:
    """Write the built-in miniature ILSVRC-2012 (see :mod:`imagenet_cli.sample`); with ``scale``,
    ILSVRC-2012's own counts times it, of tiny images (a full-count benchmark's source).

    ``classes`` takes a count (``["5"]``: five classes drawn with ``seed``, as ``subset`` draws
    them), or WNIDs, indices, named lists (``imagenette``) and unambiguous class names; the default
    is Imagenette plus the classes of the real quirk files. Files a previous run made with the same
    options are kept as they are; files this tool did not make are never overwritten. Each archive
    appears under its name only with its record, so a full disk or a kill leaves nothing half-made.
    """
    options = sample.SampleOptions(
        **({"classes": _sample_classes(classes, seed)} if classes else {}),
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        test_images=test_images,
        seed=seed,
        scale=scale,
    )
    wanted = sample.options_record(layout, options)
    downloads = Root(root).downloads
    names = {"official": sample.OFFICIAL_FILES, "hf": sample.HUB_FILES}.get(layout, (archives.KAGGLE_ZIP,))
    return _generated(
        f"the sample ({layout} layout, {len(options.classes)} classes)",
        [downloads / name for name in names],
        wanted,
        lambda record: sample.write_sample(downloads, layout, options, progress=progress, before_rename=record),
        wait,
        progress,
    )


def download_evalset_sample(
    root: Path,
    name: str,
    *,
    classes: int = 4,
    per_class: int = 2,
    corruptions: list[str] | None = None,
    seed: int = 0,
    wait: bool = True,
    progress: Progress = SILENT,
) -> DownloadResult:
    """Write the miniature of an evaluation set (see :mod:`imagenet_cli.sample.evalsets`) where
    :func:`download_evalset` puts the real one, recorded as the sample is."""
    chosen = evalsets.evalset(name)
    downloads = Root(root).evalset_downloads(chosen.name)
    wanted = miniatures.options_record(chosen.name, classes, per_class, seed)
    return _generated(
        f"the miniature {chosen.title}",
        [downloads / file.name for file in chosen.files_for(corruptions)],
        wanted,
        lambda record: miniatures.write_evalset(
            downloads,
            chosen.name,
            classes=classes,
            per_class=per_class,
            corruptions=corruptions,
            seed=seed,
            before_rename=record,
        ),
        wait,
        progress,
    )


def _generated(
    what: str,
    paths: list[Path],
    wanted: dict[str, Any],
    generate: Callable[[Finish], list[Path]],
    wait: bool,
    progress: Progress,
) -> DownloadResult:
    """Files a generator makes (the sample, a miniature): kept if made with the options ``wanted``,
    else generated, each under its name only with its record (``generate`` calls the finish it is
    given for each file before its rename). Files this tool did not make are never overwritten."""
    downloads = paths[0].parent
    with locks.writing_all(paths, wait):
        for path in paths:
            atomic.sweep_temporaries(path)  # a killed or disk-full run's bytes, never under a final name
        records = {path: _existing_sample_record(path) for path in paths}
        if all(r is not None and r.details == wanted and r.matches(p) for p, r in records.items()):
            log.info("%s in %s was generated with these options already: keeping it", what, downloads)
            return DownloadResult(
                "sample", downloads, [_recorded(p, r, KEPT) for p, r in records.items() if r is not None]
            )
        log.info("generating %s in %s", what, downloads)
        written: dict[Path, DownloadRecord] = {}

        def record(temporary: Path, final: Path) -> None:
            # The record comes first: an archive under its final name always has one.
            digests = hashing.hash_file(temporary, progress=progress)
            written[final] = write_record(final, digests, source="sample", content=temporary, details=wanted)

        made = generate(record)
    return DownloadResult("sample", downloads, [_recorded(p, written[p], WRITTEN) for p in made])


def _sample_classes(classes: list[str], seed: int) -> tuple[str, ...]:
    """As ``subset --classes`` reads it: one number is a count of classes drawn with the seed;
    otherwise WNIDs, indices, names and named lists."""
    if len(classes) == 1 and classes[0].strip().isdigit():
        count = int(classes[0])
        if not 1 <= count <= catalogue.NUM_CLASSES:
            raise InvalidArgumentError(f"{count}: ILSVRC-2012 has {catalogue.NUM_CLASSES} classes", "classes")
        return tuple(sorted(choose(catalogue.wnids(), seed, count)))
    chosen = catalogue.resolve_classes(classes)
    if not chosen:
        raise InvalidArgumentError("names no class", "classes")
    return chosen


def _existing_sample_record(path: Path) -> DownloadRecord | None:
    """The record of a sample file already at ``path``; refuses to go near anything else."""
    if not path.exists():
        return None
    record = read_record(path)
    if record is None or record.source != "sample":
        raise OverwriteRefusedError(
            f"{path} exists and is not a sample this tool generated; the sample will not overwrite it"
        )
    return record


# --- over HTTP ---------------------------------------------------------------------------------


def download_hf(
    root: Path,
    *,
    files: list[str] | None = None,
    revision: str = "main",
    token: str | None = None,
    connections: int = DEFAULT_CONNECTIONS,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
    retry: RetryPolicy = RetryPolicy(),
) -> DownloadResult:
    """Fetch Hugging Face's ``ILSVRC/imagenet-1k`` files (default: the five train tar.gz and val)
    into ``ROOT/downloads`` (see :mod:`imagenet_cli.download.hub`; extra ``[hf]``), each checked
    against the sha256 the hub publishes. ``token``: default, the hub client's own (``HF_TOKEN``,
    the login cache)."""
    names = files or list(hub.DEFAULT_FILES)
    if unknown := [name for name in names if name not in hub.FILES]:
        raise InvalidArgumentError(f"{', '.join(unknown)}: the dataset's files are {', '.join(hub.FILES)}", "files")
    remotes, bearer = hub.remotes(names, revision, token)
    credentials = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    with http_client(connections, credentials, None, home=hub.endpoint()) as client:
        return _fetch_all(
            "hf",
            Root(root).downloads,
            remotes,
            lambda r: Endpoint(client, r.url, policy=retry),
            connections,
            dry_run,
            wait,
            progress,
        )


def download_evalset(
    root: Path,
    name: str,
    *,
    corruptions: list[str] | None = None,
    base_url: str | None = None,
    connections: int = DEFAULT_CONNECTIONS,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
    retry: RetryPolicy = RetryPolicy(),
) -> DownloadResult:
    """Fetch an evaluation set's files (see :mod:`imagenet_cli.evalsets`) into
    ``ROOT/downloads/<name>/``, each checked against its published size and MD5 where there is one
    and recorded with the digests it arrived with. ``base_url``: a mirror holding the same file
    names; ``corruptions``: ImageNet-C's groups to fetch (default: all five, about 62 GB)."""
    chosen = evalsets.evalset(name)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"{base_url!r} is not an http(s) URL", "base_url")
    mirror = base_url.rstrip("/") + "/" if base_url else None
    remotes = [
        Remote(
            file.name,
            mirror + file.name if mirror else file.url,
            {"md5": file.md5} if file.md5 else {},
            file.size,
            {"dataset": chosen.name},
        )
        for file in chosen.files_for(corruptions)
    ]
    with http_client(connections) as client:
        return _fetch_all(
            chosen.name,
            Root(root).evalset_downloads(chosen.name),
            remotes,
            lambda remote: Endpoint(client, remote.url, policy=retry),
            connections,
            dry_run,
            wait,
            progress,
        )


def download_official(
    root: Path,
    *,
    files: list[str] | None = None,
    base_url: str = official.BASE_URL,
    headers: list[str] | None = None,
    cookies: Path | None = None,
    trusted_hosts: list[str] | None = None,
    checksums: Path | None = None,
    connections: int = DEFAULT_CONNECTIONS,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
    retry: RetryPolicy = RetryPolicy(),
) -> DownloadResult:
    """Fetch official archives (default: train, val, devkit) from image-net.org or a mirror.

    ``headers`` are ``"Name: value"`` strings and ``cookies`` a Netscape cookies.txt, for servers
    that want a login. They are sent to ``base_url``'s host only, and to ``trusted_hosts``: a
    redirect to any other host gets no credentials. Each archive's size and MD5 are checked
    against the published ones, or against ``checksums`` (an md5sum-style file) for the files it
    names.
    """
    sums = hashing.read_checksums(checksums) if checksums else None
    remotes = official.official_remotes(base_url, files, sums)
    extra_headers = dict(official.parse_header(h) for h in headers or [])
    jar = official.load_cookies(cookies) if cookies else None
    trusted = frozenset(host.strip().lower() for host in trusted_hosts or [])
    with http_client(connections, extra_headers, jar, home=base_url, trusted_hosts=trusted) as client:
        return _fetch_all(
            "official",
            Root(root).downloads,
            remotes,
            lambda remote: Endpoint(client, remote.url, policy=retry),
            connections,
            dry_run,
            wait,
            progress,
        )


def download_kaggle(
    root: Path,
    *,
    connections: int = DEFAULT_CONNECTIONS,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
    retry: RetryPolicy = RetryPolicy(),
) -> DownloadResult:
    """Fetch the Kaggle competition bundle (~155 GB) through a signed URL from Kaggle's API.

    A bundle already complete and recorded is kept without asking Kaggle anything.
    """
    downloads = Root(root).downloads
    path = downloads / kaggle.ZIP_NAME
    record = read_record(path) if path.exists() else None
    if record is not None and record.matches(path):
        return DownloadResult("kaggle", downloads, [_recorded(path, record, KEPT)], free_bytes(downloads), dry_run)
    credentials = kaggle.find_credentials()
    url = kaggle.signed_url(credentials, retry)
    remote = Remote(kaggle.ZIP_NAME, url)
    with http_client(connections, {}, None) as client:
        return _fetch_all(
            "kaggle",
            downloads,
            [remote],
            lambda r: Endpoint(client, r.url, renew=lambda: kaggle.signed_url(credentials, retry), policy=retry),
            connections,
            dry_run,
            wait,
            progress,
        )


def _fetch_all(
    source: str,
    downloads: Path,
    remotes: list[Remote],
    endpoint_for: Callable[[Remote], Endpoint],
    connections: int,
    dry_run: bool,
    wait: bool,
    progress: Progress,
) -> DownloadResult:
    """Fetch each remote not already complete; holds every file's lock while it works on it, so a
    second download of the same files waits, then finds them complete (a dry run locks nothing)."""
    paths = [] if dry_run else [downloads / remote.name for remote in remotes]
    with locks.writing_all(paths, wait):
        for path in paths:
            atomic.sweep_temporaries(path)
        kept: dict[str, FetchedFile] = {}
        plans: list[tuple[Plan, Endpoint]] = []
        for remote in remotes:
            already = _already_complete(downloads / remote.name, remote, source, progress)
            if already is not None:
                kept[remote.name] = already
                continue
            endpoint = endpoint_for(remote)
            plans.append((plan_transfer(remote, downloads, endpoint, connections), endpoint))
        check_free_space([plan for plan, _ in plans], downloads)

        results = dict(kept)
        for plan, endpoint in plans:
            if dry_run:
                status = WOULD_RESUME if plan.done else WOULD_FETCH
                missing = plan.missing_bytes or 0
                results[plan.remote.name] = FetchedFile(
                    plan.remote.name, plan.path, plan.identity.size, status, transferred=missing
                )
                continue
            written: list[DownloadRecord] = []

            def record(done: Plan, digests: dict[str, str], written: list[DownloadRecord] = written) -> None:
                # The record comes first: an archive under its final name always has one.
                identity = done.identity
                written.append(
                    write_record(
                        done.path,
                        digests,
                        source=source,
                        content=done.part,
                        url=identity.url,
                        etag=identity.etag,
                        last_modified=identity.last_modified,
                        # A digest the source publishes beside MD5 (the hub's sha256), as checked.
                        details={
                            **done.remote.details,
                            **({"sha256": digests["sha256"]} if "sha256" in digests else {}),
                        },
                    )
                )

            outcome = run_transfer(plan, endpoint, connections, progress, before_rename=record)
            status = RESUMED if outcome.resumed else DOWNLOADED
            results[plan.remote.name] = _recorded(outcome.path, written[-1], status, outcome.transferred)
        files = [results[remote.name] for remote in remotes]
        return DownloadResult(source, downloads, files, free_bytes(downloads), dry_run)


def _already_complete(path: Path, remote: Remote, source: str, progress: Progress) -> FetchedFile | None:
    """A file already under its final name: kept if recorded (or provably the expected file)."""
    if not path.exists():
        return None
    record = read_record(path)
    if record is not None and record.matches(path):
        published = _published_digests(record)
        if _contradicts(published, remote.expected):
            # The source publishes another digest for this name now (the hub's main moved on): the
            # recorded file stays usable until the new one is complete and replaces it. (An MD5
            # that differs is not this: a mirror may serve other bytes, checked by its own sums.)
            log.warning("%s changed at %s since it was fetched: fetching it again", path.name, remote.url)
            return None
        # Recorded from this very URL (a mirror checked against its own --checksums, say): it is
        # complete whatever this run expects; verify still holds it to its checksums.
        same_place = record.url is not None and record.url == url_without_query(remote.url)
        if same_place or _agrees({"md5": record.md5, "xxh3_64": record.xxh3_64, **published}, remote.expected):
            _remove_leftovers_of(path)
            return _recorded(path, record, KEPT)
    if remote.expected and (remote.size is None or path.stat().st_size == remote.size):
        log.info("%s is here but not recorded; checking it against the expected checksum", path.name)
        algorithms = tuple(dict.fromkeys(hashing.DEFAULT_ALGORITHMS + tuple(remote.expected)))
        digests = hashing.hash_file(path, algorithms, progress=progress)
        if _agrees(digests, remote.expected):
            written = write_record(
                path, digests, source=source, url=url_without_query(remote.url), details=remote.details
            )
            return _recorded(path, written, KEPT)
    partial = path.with_name(path.name + KAGGLE_PARTIAL_SUFFIX)
    why = " (the kaggle tool left it half-downloaded)" if partial.exists() else ""
    raise OverwriteRefusedError(
        f"{path} exists{why} but is not a complete, recorded download of it; it will not be overwritten"
    )


def _remove_leftovers_of(path: Path) -> None:
    """A partial file and journal beside a complete, recorded one are a concurrent run's leftovers."""
    for leftover in (path.with_name(path.name + PART_SUFFIX), path.with_name(path.name + JOURNAL_SUFFIX)):
        if leftover.exists():
            log.info("removing %s: %s is complete", leftover.name, path.name)
            leftover.unlink()


def _agrees(digests: dict[str, str], expected: dict[str, str]) -> bool:
    return all(digests.get(algorithm) == hexdigest for algorithm, hexdigest in expected.items())


def _published_digests(record: DownloadRecord) -> dict[str, str]:
    """Digests a record keeps beside its own MD5 and xxh3: the hub's sha256, as it was checked."""
    return {"sha256": str(record.details["sha256"])} if "sha256" in record.details else {}


def _contradicts(known: dict[str, str], expected: dict[str, str]) -> bool:
    """A digest both sides have, and disagree on: the expected file is another file."""
    return any(algorithm in known and known[algorithm] != hexdigest for algorithm, hexdigest in expected.items())

"""What a check found: problems are data, counted and named, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

# Per check and per kind: beyond it problems of that kind are counted, not kept (a broken tree
# stays small in memory), and 1,000 missing files never hide the one wrong label among them.
MAX_LISTED = 1000


class ProblemKind(StrEnum):
    CHECKSUM = "checksum"  # the bytes hash to another digest than expected
    SIZE = "size"  # another length than published or recorded
    STRUCTURE = "structure"  # an archive lacks or holds members it must not
    MISSING = "missing"  # a file the manifest or the dataset names is not there
    EXTRA = "extra"  # a file nothing names
    CHANGED = "changed"  # a file's bytes differ from its manifest row
    MISPLACED = "misplaced"  # a file under another class than its label
    UNDECODABLE = "undecodable"  # an image that does not decode
    LABEL = "label"  # a val label that disagrees with the ground truth
    COUNT = "count"  # a split or class holds another number of images than expected
    REFUSED = "refused"  # a member refused as unsafe (a path outside, a link)
    STALE = "stale"  # a tree whose recorded inputs have changed since
    DUPLICATE = "duplicate"  # a name that appears twice
    DAMAGED = "damaged"  # a record or member that cannot be read
    UNFINISHED = "unfinished"  # being written, or left half-made


class Status(StrEnum):
    OK = "ok"
    PROBLEMS = "problems"
    UNKNOWN = "unknown"  # nothing to check the content against: not "good"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    where: str  # the file, archive member or tree-relative path
    detail: str


@dataclass
class Check:
    path: Path
    kind: str  # "archive", "tree" or "export"
    checked: list[str] = field(default_factory=list)  # what was checked, in words
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    counted: dict[ProblemKind, int] = field(default_factory=dict)  # problems of each kind, kept or not
    unknown: bool = False  # nothing to check the content against: not "good"
    counts: dict[str, int] = field(default_factory=dict)
    url: str | None = None  # in object storage: its URL (``path`` is then the bucket and prefix)

    @property
    def where(self) -> str:
        """What was checked, as a user names it: its path or its URL."""
        return self.url or str(self.path)

    @property
    def name(self) -> str:
        return self.where.rstrip("/").rsplit("/", 1)[-1]

    def add(self, kind: ProblemKind, where: str, detail: str) -> None:
        self.problem_count += 1
        self.counted[kind] = self.counted.get(kind, 0) + 1
        if self.counted[kind] <= MAX_LISTED:
            self.problems.append(Problem(kind, where, detail))

    def note(self, what: str) -> None:
        self.checked.append(what)

    @property
    def status(self) -> Status:
        if self.problem_count:
            return Status.PROBLEMS
        return Status.UNKNOWN if self.unknown else Status.OK

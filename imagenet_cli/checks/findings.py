"""What a check found: problems are data, counted and named, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Per check and per kind: beyond it problems of that kind are counted, not kept (a broken tree
# stays small in memory), and 1,000 missing files never hide the one wrong label among them.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Problem:
    # checksum, size, missing, extra, changed, misplaced, undecodable, label, structure, count,
    # refused, stale, duplicate, damaged, unfinished
    kind: str
    where: str  # the file, archive member or tree-relative path
    detail: str


@dataclass
class Check:
    path: Path
    kind: str  # "archive", "tree" or "export"
    checked: list[str] = field(default_factory=list)  # what was checked, in words
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    counted: dict[str, int] = field(default_factory=dict)  # problems of each kind, kept or not
    unknown: bool = False  # nothing to check the content against: not "good"
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, where: str, detail: str) -> None:
        self.problem_count += 1
        self.counted[kind] = self.counted.get(kind, 0) + 1
        if self.counted[kind] <= MAX_LISTED:
            self.problems.append(Problem(kind, where, detail))

    def note(self, what: str) -> None:
        self.checked.append(what)

    @property
    def status(self) -> str:
        if self.problem_count:
            return "problems"
        return "unknown" if self.unknown else "ok"

"""What a check found: problems are data, counted and named, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MAX_LISTED = 1000  # per check; beyond it problems are counted, not kept (a broken tree stays small in memory)


@dataclass(frozen=True)
class Problem:
    kind: str  # checksum, size, missing, extra, changed, misplaced, undecodable, label, structure, count, refused, stale, duplicate, damaged
    where: str  # the file, archive member or tree-relative path
    detail: str


@dataclass
class Check:
    path: Path
    kind: str  # "archive", "tree" or "export"
    checked: list[str] = field(default_factory=list)  # what was checked, in words
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    unknown: bool = False  # nothing to check the content against: not "good"
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, where: str, detail: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(kind, where, detail))

    def note(self, what: str) -> None:
        self.checked.append(what)

    @property
    def status(self) -> str:
        if self.problem_count:
            return "problems"
        return "unknown" if self.unknown else "ok"

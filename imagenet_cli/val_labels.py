"""The label of every val image: read strictly from the inputs, checked row by row against ours.

The val archive holds flat files; their classes come from the devkit's ground truth (line k: the
ILSVRC2012_ID of ``ILSVRC2012_val_<k>``) or Kaggle's ``LOC_val_solution.csv``. The package ships
the true WNID of all 50,000 (``catalogue.val_labels()``), so an input that disagrees is named, row
by row, and the shipped label is used, unless the caller trusts the input (``trust_input``): then
the input's labels are used, and two inputs must agree with each other.

An input that cannot be a ground truth (a line short or long, a line that is not an ILSVRC2012_ID,
a row naming no val image or an unknown WNID) is a damaged file: :class:`ArchiveError` naming the
file and the line, never a guess.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from . import catalogue
from .errors import ArchiveError, InvalidArgumentError, LabelConflictError, UnknownClassError

TABLE = "the shipped table"


@dataclass(frozen=True)
class Disagreement:
    """One val image an input labels otherwise than the shipped table."""

    number: int
    says: str  # the input's WNID
    table: str  # the shipped WNID

    def __str__(self) -> str:
        return f"{catalogue.val_file_name(self.number)}: it says {self.says}, the table {self.table}"


@dataclass(frozen=True)
class LabelInput:
    """The labels one input file gives, by val image number."""

    name: str  # the input, in words ("the devkit's ground truth")
    labels: dict[int, str]

    def disagreements(self) -> list[Disagreement]:
        table = catalogue.val_labels()
        return [Disagreement(n, w, table[n - 1]) for n, w in sorted(self.labels.items()) if w != table[n - 1]]


@dataclass(frozen=True)
class ValLabels:
    """What a run labels val with: 50,000 WNIDs, where they came from, and what disagreed."""

    wnids: tuple[str, ...]
    source: str
    disagreements: dict[str, list[Disagreement]]  # input name -> its rows that differ from the table

    def warnings(self, trusted: bool) -> Iterator[str]:
        """One line per input that disagreed, naming its first rows."""
        for name, rows in self.disagreements.items():
            if not rows:
                continue
            shown = "; ".join(map(str, rows[:3])) + ("; …" if len(rows) > 3 else "")
            used = f"using {name}'s labels, as asked" if trusted else f"using {TABLE}'s labels"
            images = "1 val image" if len(rows) == 1 else f"{len(rows):,} val images"
            yield f"{name} labels {images} otherwise than {TABLE} ({shown}): {used}"


def devkit_labels(text: str, where: str) -> LabelInput:
    """The devkit's ``ILSVRC2012_validation_ground_truth.txt``: exactly 50,000 ILSVRC2012_IDs."""
    lines = text.splitlines()
    if len(lines) != catalogue.NUM_VAL_IMAGES:
        raise ArchiveError(f"{where} has {len(lines):,} lines; a ground truth has one per val image, 50,000")
    labels: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        try:
            labels[number] = catalogue.by_devkit_id(int(line)).wnid
        except (ValueError, UnknownClassError):
            raise ArchiveError(
                f"{where} line {number}: {line.strip()[:20]!r} is not an ILSVRC2012_ID (1–1000)"
            ) from None
    return LabelInput("the devkit's ground truth", labels)


def loc_solution_labels(text: str, where: str) -> LabelInput:
    """Kaggle's ``LOC_val_solution.csv``: ``ImageId,PredictionString``, the first WNID of each
    prediction string labelling the image. A row per image the bundle holds."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header != ["ImageId", "PredictionString"]:
        raise ArchiveError(f"{where} starts with {header}, not ImageId,PredictionString")
    labels: dict[int, str] = {}
    for number, row in enumerate(rows, 2):
        if not row:
            continue
        if len(row) != 2 or not row[1].split():
            raise ArchiveError(f"{where} line {number} is not an ImageId,PredictionString row: {','.join(row)[:80]}")
        try:
            image = catalogue.val_number(row[0])
        except InvalidArgumentError:
            raise ArchiveError(f"{where} line {number}: {row[0][:40]!r} is not an ILSVRC-2012 val image") from None
        wnid = row[1].split()[0]
        if not catalogue.is_wnid(wnid):
            raise ArchiveError(f"{where} line {number}: {wnid[:20]!r} is not one of the 1000 WNIDs")
        if labels.setdefault(image, wnid) != wnid:
            raise ArchiveError(f"{where} line {number}: {row[0]} is labelled twice, differently")
    return LabelInput("Kaggle's LOC_val_solution.csv", labels)


def choose(inputs: list[LabelInput], trust_input: bool = False) -> ValLabels:
    """The labels to use: the shipped table's, or with ``trust_input`` the inputs' (which must
    then agree with each other), each input's disagreements with the table kept for the record."""
    disagreements = {given.name: given.disagreements() for given in inputs}
    if not trust_input or not inputs:
        source = TABLE if not inputs else f"{TABLE} (checked against {' and '.join(i.name for i in inputs)})"
        return ValLabels(catalogue.val_labels(), source, disagreements)
    if len(inputs) == 2:
        first, second = inputs
        for number in sorted(set(first.labels) & set(second.labels)):
            if first.labels[number] != second.labels[number]:
                raise LabelConflictError(
                    f"{catalogue.val_file_name(number)}: {first.name} says {first.labels[number]}, "
                    f"{second.name} says {second.labels[number]}"
                )
    merged = list(catalogue.val_labels())
    for number, wnid in inputs[0].labels.items():
        merged[number - 1] = wnid
    return ValLabels(tuple(merged), inputs[0].name, disagreements)


NOT_A_VAL_NAME = "not an ILSVRC2012_val_<8 digits>.JPEG name numbered 1–50,000, so it has no label: not used"


def label_of(labels: tuple[str, ...], name: str) -> str | None:
    """The WNID of a val image from its file name (``labels``: the WNID of each val image, in
    order); None for a name no val image has."""
    try:
        return labels[catalogue.val_number(name) - 1]
    except InvalidArgumentError:
        return None

"""Curricula: orders of class units, identified by their index in `itertools.permutations` order.

Settings (paper Sec. 3 / spec "Curricula"):
- ``single``: one class per experience; 5 classes give 5! = 120 curricula.
- ``pairs``: the classes are grouped in consecutive pairs ([0,1], [2,3], ...), one pair per experience; 10 classes
  give 120 pair orders.
- ``nod``: 5 classes in 4 experiences, the first holding 2 classes; orders that differ only by a swap of the first
  two classes are the same curriculum, leaving 60.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from curriculum_cl.errors import CurriculumError

SETTINGS = ("single", "pairs", "nod")


def parse_classes(spec: str | list[int] | tuple[int, ...]) -> list[int]:
    """Parse ``"0-4"``, ``"0,1,2,3,4"`` (or a list) into a list of distinct class indices, order kept."""
    if isinstance(spec, list | tuple):
        classes = [int(c) for c in spec]
    else:
        text = str(spec).replace(" ", "")
        try:
            if "-" in text and "," not in text:
                lo, hi = (int(v) for v in text.split("-"))
                classes = list(range(lo, hi + 1))
            else:
                classes = [int(v) for v in text.split(",") if v != ""]
        except ValueError:
            raise CurriculumError(f"--classes: cannot parse {spec!r} (use e.g. 0-4 or 0,1,2,3,4)") from None
    if len(set(classes)) != len(classes) or any(c < 0 for c in classes):
        raise CurriculumError(f"--classes: {spec!r} must name distinct non-negative class indices")
    if not classes:
        raise CurriculumError("--classes: empty class list")
    return classes


@dataclass(frozen=True)
class CurriculumSpace:
    """All curricula of one setting over a fixed list of classes."""

    classes: tuple[int, ...]
    setting: str = "single"

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise CurriculumError(f"unknown curriculum setting {self.setting!r}; choose one of {SETTINGS}")
        n = len(self.classes)
        if self.setting == "pairs" and n % 2:
            raise CurriculumError(f"setting 'pairs' needs an even number of classes, got {n}")
        if self.setting == "nod" and n != 5:
            raise CurriculumError(f"setting 'nod' needs exactly 5 classes (4 experiences), got {n}")
        if self.num_experiences < 2:
            raise CurriculumError(
                f"{n} classes give {self.num_experiences} experience(s); a curriculum needs at least 2"
            )

    @property
    def units(self) -> list[tuple[int, ...]]:
        """The ordered units: single classes, or class pairs in the 'pairs' setting."""
        if self.setting == "pairs":
            return [tuple(self.classes[i : i + 2]) for i in range(0, len(self.classes), 2)]
        return [(c,) for c in self.classes]

    @property
    def num_experiences(self) -> int:
        return len(self.units) - 1 if self.setting == "nod" else len(self.units)

    @property
    def orders(self) -> list[tuple[int, ...]]:
        """Unit-index orders, in `itertools.permutations` order (NOD: first pair deduplicated)."""
        perms = itertools.permutations(range(len(self.units)))
        if self.setting == "nod":
            return [p for p in perms if p[0] < p[1]]
        return list(perms)

    def __len__(self) -> int:
        return len(self.orders)

    def experiences(self, curriculum_id: int) -> list[list[int]]:
        """The class labels of each experience of curriculum ``curriculum_id``."""
        orders = self.orders
        if not 0 <= curriculum_id < len(orders):
            raise CurriculumError(f"curriculum id {curriculum_id} out of range 0..{len(orders) - 1}")
        units = self.units
        order = orders[curriculum_id]
        groups = [list(units[u]) for u in order]
        if self.setting == "nod":
            groups = [groups[0] + groups[1], *groups[2:]]
        return groups

    def order_string(self, curriculum_id: int) -> str:
        """Compact name of a curriculum: its unit indices, e.g. '20314'."""
        return "".join(str(u) for u in self.orders[curriculum_id])


def parse_curriculum_ids(spec: str, total: int) -> list[int]:
    """``"all"`` or a comma/range list such as ``"0-9,15"`` into sorted ids within ``0..total-1``."""
    if spec in ("all", ""):
        return list(range(total))
    ids: set[int] = set()
    try:
        for part in spec.split(","):
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-"))
                ids.update(range(lo, hi + 1))
            else:
                ids.add(int(part))
    except ValueError:
        raise CurriculumError(f"sweep.curricula: cannot parse {spec!r}") from None
    bad = [i for i in ids if not 0 <= i < total]
    if bad:
        raise CurriculumError(f"sweep.curricula: ids {sorted(bad)} out of range 0..{total - 1}")
    return sorted(ids)

"""Check a record file before training: schema rules, image files, paths that climb out of the image root.

The file is read with the normal readers in skip mode, so every rule a reader enforces is checked the same
way here and counted under the same reason names as in rejects files. Each image of a good record is then
resolved under the image root and checked from its header and last bytes (``images.check_image``), never
decoded: a full decode costs hundreds of times more and finds almost nothing the header and end marker miss.

Memory stays flat: only the per-reason counts, the first ``max_show`` problems and a bounded cache of image
verdicts (datasets reuse one image for many rows) are kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RowError
from ..formats import RecordReader
from ..formats.convert import default_image_root
from ..images import check_image, resolve
from ..records import is_url

# Distinct image verdicts remembered; past this the cache starts over (correct, just slower).
_IMAGE_CACHE_MAX = 200_000


@dataclass
class ValidationReport:
    """What ``validate_file`` found. ``ok`` is true only when nothing at all was wrong."""

    path: str
    format: str = ""
    detected: str = ""
    rows: int = 0
    good_rows: int = 0
    images_checked: int = 0
    images_skipped: int = 0          # URLs: nothing local to check
    counts: Counter = field(default_factory=Counter)
    shown: list[RowError] = field(default_factory=list)
    max_show: int = 20
    stopped: str | None = None       # set when reading could not go on (a JSON list broken mid-way)

    @property
    def problems(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def add(self, err: RowError) -> None:
        self.counts[err.reason] += 1
        if len(self.shown) < self.max_show:
            self.shown.append(err)

    # RecordReader calls ``rejects.write(err, data)`` for each rejected row in skip mode.
    def write(self, err: RowError, data: Any = None) -> None:
        self.add(err)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "detected": self.detected, "ok": self.ok,
            "rows": self.rows, "good_rows": self.good_rows, "bad_rows": self.rows - self.good_rows,
            "problems": self.problems, "images_checked": self.images_checked,
            "images_skipped": self.images_skipped, "stopped": self.stopped,
            "counts": dict(sorted(self.counts.items())), "shown": [e.to_dict() | {"where": e.where}
                                                                    for e in self.shown],
        }

    def render(self) -> str:
        lines = [self.detected or self.path]
        lines.append(f"rows: {self.rows} read, {self.good_rows} good, {self.rows - self.good_rows} with problems; "
                     f"images: {self.images_checked} checked, {self.images_skipped} URLs not checked")
        if self.stopped:
            lines.append(f"reading stopped: {self.stopped}")
        if self.ok:
            lines.append("OK: no problems found")
            return "\n".join(lines)
        lines.append(f"{self.problems} problem(s) by reason:")
        width = max(len(r) for r in self.counts)
        for reason, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<{width}}  {n}")
        more = self.problems - len(self.shown)
        lines.append(f"first {len(self.shown)} problem(s):" + (f" ({more} more not shown)" if more > 0 else ""))
        lines.extend(f"  {e}" for e in self.shown)
        return "\n".join(lines)


def validate_file(path: str | Path, *, fmt: str | None = None, image_root: str | Path | None = None,
                  check_images: bool = True, max_show: int = 20) -> ValidationReport:
    """Read ``path`` and report every problem. Raises ``FormatError`` only when the file cannot be read
    as records at all (missing, unknown format); everything row-level ends up in the report."""
    path = Path(path)
    report = ValidationReport(path=str(path), max_show=max_show)
    try:
        reader = RecordReader(path, fmt, on_error="skip", rejects=report)  # type: ignore[arg-type]
    except RowError as err:   # empty file, broken first row: the whole file is the problem
        report.add(err)
        return report
    report.format = reader.format
    report.detected = reader.detected.sentence(path)
    root = Path(image_root) if image_root is not None else default_image_root(path, reader.detected.container)
    seen: dict[str, RowError | None] = {}
    name = str(path)
    try:
        for rec in reader:
            row_ok = True
            if check_images:
                for image in rec.images:
                    if is_url(image):
                        report.images_skipped += 1
                        continue
                    report.images_checked += 1
                    err = _check(image, root, seen)
                    if err is not None:
                        report.add(RowError(err.reason, err.detail, file=name, line=reader.line, row=reader.row))
                        row_ok = False
            report.good_rows += row_ok
    except RowError as err:
        # Only a JSON list broken mid-way gets here (the parser loses its place; no resync is possible).
        report.add(err.located(file=name))
        report.stopped = str(err)
    report.rows = reader.stats.read
    return report


def _check(image: str, root: Path, seen: dict[str, RowError | None]) -> RowError | None:
    if image in seen:
        return seen[image]
    try:
        check_image(resolve(image, root))
        verdict = None
    except RowError as err:
        verdict = err
    if len(seen) >= _IMAGE_CACHE_MAX:
        seen.clear()
    seen[image] = verdict
    return verdict

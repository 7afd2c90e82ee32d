"""Many videos from one manifest: read the CSV, render each row here or on a service, report.

A manifest is a CSV file with a header row. Columns: `image` and `output` (required), one of
`text` or `audio` per row, and optionally `voice` and `lang` (the command's own `--voice` and
`--lang` otherwise). Paths are relative to the manifest's folder. Rows whose output exists are
skipped, so a batch that stopped half-way is finished by running it again.

Rendering here reuses what one process keeps warm between renders (the rigged photo, keyed by
its content, and the loaded voices); on a service the rows run `concurrency` at a time.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from facecast.errors import ErrorCode, FacecastError
from facecast.options import RenderOptions

COLUMNS = ("image", "text", "audio", "voice", "lang", "output")
REQUIRED = ("image", "output")
MAX_ROWS = 10_000
"""A manifest longer than this is almost certainly not what the user meant to run."""


class ManifestError(FacecastError):
    code = ErrorCode.INVALID_MANIFEST


@dataclass(frozen=True)
class BatchRow:
    """One video to make: its manifest line, inputs, voice choice and output."""

    line: int
    image: Path
    output: Path
    text: str | None = None
    audio: Path | None = None
    voice: str | None = None
    lang: str | None = None

    def options(self, base: RenderOptions) -> RenderOptions:
        """`base` with this row's voice and language where it names them."""
        return dataclasses.replace(
            base, voice=self.voice or base.voice, lang=self.lang or base.lang
        )


@dataclass(frozen=True)
class Outcome:
    """What became of one row: "done", "skipped" (its output existed) or "failed"."""

    row: BatchRow
    status: str
    message: str = ""


@dataclass(frozen=True)
class BatchReport:
    """Every row's outcome, in manifest order."""

    outcomes: tuple[Outcome, ...]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    def summary(self) -> str:
        """One line: how many were made, skipped and failed."""
        return (
            f"{self.count('done')} rendered, {self.count('skipped')} skipped (output exists), "
            f"{self.count('failed')} failed"
        )


def read_manifest(path: Path) -> tuple[BatchRow, ...]:
    """The rows of a manifest; ManifestError naming the line for anything malformed."""
    folder = path.parent
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip().lower() for name in reader.fieldnames or ()]
            unknown = sorted(set(header) - set(COLUMNS))
            if unknown:
                raise ManifestError(
                    f"{path}: unknown column(s) {', '.join(unknown)}; "
                    f"the columns are {', '.join(COLUMNS)}."
                )
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise ManifestError(f"{path}: the header needs the column(s) {', '.join(missing)}.")
            reader.fieldnames = header
            rows = tuple(_row(raw, reader.line_num, folder) for raw in _bounded(reader, path))
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not a UTF-8 CSV file.") from None
    except csv.Error as exc:
        raise ManifestError(f"{path}: {exc}") from None
    if not rows:
        raise ManifestError(f"{path} has no rows under its header.")
    outputs = [row.output for row in rows]
    twice = sorted({str(o) for o in outputs if outputs.count(o) > 1})
    if twice:
        raise ManifestError(f"{path}: several rows write {twice[0]}.")
    return rows


def _bounded(reader: csv.DictReader[str], path: Path) -> Iterable[dict[str, str | None]]:
    for count, raw in enumerate(reader, start=1):
        if count > MAX_ROWS:
            raise ManifestError(f"{path} has more than {MAX_ROWS} rows.")
        if any(value and value.strip() for value in raw.values() if isinstance(value, str)):
            yield raw


def _row(raw: dict[str, str | None], line: int, folder: Path) -> BatchRow:
    def cell(name: str) -> str | None:
        value = raw.get(name)
        return value.strip() or None if isinstance(value, str) else None

    if None in raw:
        raise ManifestError(f"line {line}: more cells than the header has columns.")
    image, output, text, audio = cell("image"), cell("output"), cell("text"), cell("audio")
    if image is None or output is None:
        raise ManifestError(f"line {line}: every row needs an image and an output.")
    if (text is None) == (audio is None):
        raise ManifestError(f"line {line}: give text or audio (one of them).")
    return BatchRow(
        line=line,
        image=folder / image,
        output=folder / output,
        text=text,
        audio=folder / audio if audio else None,
        voice=cell("voice"),
        lang=cell("lang"),
    )


Render = Callable[[BatchRow], None]
"""Makes one row's video at `row.output`; raises FacecastError when the row cannot be made."""


def run(
    rows: Iterable[BatchRow],
    render: Render,
    concurrency: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> BatchReport:
    """Every row through `render` (`concurrency` at a time), skipping existing outputs; a failed
    row is reported and the batch goes on."""

    def one(row: BatchRow) -> Outcome:
        if row.output.exists():
            outcome = Outcome(row, "skipped")
        else:
            try:
                row.output.parent.mkdir(parents=True, exist_ok=True)
                render(row)
                outcome = Outcome(row, "done")
            except (FacecastError, OSError) as exc:
                message = exc.message if isinstance(exc, FacecastError) else str(exc)
                outcome = Outcome(row, "failed", message)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    if concurrency <= 1:
        return BatchReport(tuple(one(row) for row in rows))
    with ThreadPoolExecutor(concurrency, thread_name_prefix="facecast-batch") as pool:
        return BatchReport(tuple(pool.map(one, rows)))

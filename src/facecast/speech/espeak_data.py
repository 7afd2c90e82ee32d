"""espeak-ng's data folder as facecast uses it: a copy of the wheel's data under a short path
(espeak-ng caps path lengths), with steady voice variants added (no random breath, no
roughness: the same text always gives the same samples), made once and atomically."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from facecast.errors import (
    BackendUnavailableError,
)

logger = logging.getLogger(__name__)


MAX_DATA_PATH_BYTES = 100
"""espeak-ng copies the data path into a 160-byte buffer and appends file names of up to
~30 bytes ("lang/sit/yue-Latn-jyutping"); longer paths are copied somewhere short."""


DATA_MARKER = "phontab"


STEADY_FOLDER = "facecast-steady"
"""Variant files facecast adds: the same voices without pitch flutter and without roughness.
espeak keeps both oscillators running from one utterance into the next (the flutter table's
position; the pitch-cycle count whose parity says which cycles roughness quietens), so the
same text came out different after other speech: a few milliseconds longer with flutter, and
with roughness in one of two sample versions that flipped with every clause spoken. Pico's
mouth timings are aligned to espeak's speech, so a worker that had spoken its warm-up text
moved the mouth differently from a fresh CLI. Without both, the same input always gives the
same audio, whatever the process said before."""


STEADY_PLAIN = "default"


STEADY_SETTINGS = b"\nflutter 0\nroughness 8\n"
"""roughness 8 is past espeak's table of roughness levels (0-7): no cycle is quietened."""


DATA_LAYOUT = "steady3"
"""Names the prepared data folder's layout; a new layout gets a fresh copy."""
"""A file every espeak-ng data folder holds."""


VARIANT_FOLDER = ("voices", "!v")
"""Where espeak-ng keeps voice variants ("f3", "m1", "klatt", ...), relative to its data."""


LOADER_DISTRIBUTION = "espeakng-loader"


def _fits_espeak(path: Path) -> bool:
    text = str(path)
    return text.isascii() and len(text.encode()) <= MAX_DATA_PATH_BYTES


def prepared_data_dir(source: Path, scratch_root: Path | None = None) -> Path:
    """The espeak-ng data folder facecast speaks from: a copy of `source`, made once under
    `scratch_root` (default: the system temp folder), at a short ASCII path espeak can hold,
    with a steady twin of every voice variant (see STEADY_VARIANT)."""
    if not (source / DATA_MARKER).is_file():
        raise BackendUnavailableError(f"espeak-ng data not found at {source}.")
    root = Path(scratch_root) if scratch_root is not None else Path(tempfile.gettempdir())
    try:
        version = metadata.version(LOADER_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    owner = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    target = root / f"facecast-espeak-{version}{owner}-{DATA_LAYOUT}" / source.name
    if not _fits_espeak(target):
        raise BackendUnavailableError(
            f"espeak-ng needs its data under a short ASCII path; {target} is not one."
        )
    if not (target / DATA_MARKER).is_file():
        _copy_atomically(source, target)
    return target


def _add_steady_variants(data_dir: Path) -> None:
    """Write a flutter-free twin of each voice variant, and a plain one for no variant.

    They live outside `voices/`: espeak lists every file there at start-up and drops voices
    past 350 entries, so twins inside would push out real languages.
    """
    variants = data_dir.joinpath(*VARIANT_FOLDER)
    folder = data_dir / STEADY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if variants.is_dir():
        for variant in [p for p in variants.iterdir() if p.is_file()]:
            (folder / variant.name).write_bytes(variant.read_bytes() + STEADY_SETTINGS)
    (folder / STEADY_PLAIN).write_bytes(b"name facecast" + STEADY_SETTINGS)


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy into a private folder, then rename it into place; a concurrent copier may win."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    logger.info("Preparing espeak-ng data in %s.", target)
    try:
        shutil.copytree(source, staging / source.name)
        _add_steady_variants(staging / source.name)
        os.replace(staging / source.name, target)
    except OSError:
        if not (target / DATA_MARKER).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

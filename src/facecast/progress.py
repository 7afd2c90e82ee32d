"""How long-running stages report progress and learn that they should stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from facecast.errors import CanceledError

ProgressCallback = Callable[[str, float], None]
"""Called with a stage name and the overall fraction done, 0.0 to 1.0."""

CancelCheck = Callable[[], bool]
"""Returns True when the caller wants the work stopped."""


@dataclass(frozen=True)
class Reporter:
    """Maps a stage's own 0..1 progress onto its share of the whole job."""

    callback: ProgressCallback | None = None
    cancel: CancelCheck | None = None

    def stage(self, name: str, start: float, end: float, fraction: float) -> None:
        """Report `fraction` of stage `name`, spanning [start, end] of the job; stop if canceled."""
        if self.cancel is not None and self.cancel():
            raise CanceledError("The job was canceled.")
        if self.callback is not None:
            self.callback(name, start + (end - start) * min(max(fraction, 0.0), 1.0))

"""The worker's side of a live stream: notice the first segment, and publish the files.

The encoder writes the HLS stream into a local folder (video.hls_target). A `StreamWatch`
thread looks at that folder every few milliseconds: each finished file (init, segments, then
the playlist that names them) is handed to `publish` (an object store uploads it; the local
store needs nothing, the folder is already where downloads are served from), and once the
playlist exists `on_first` tells the state store, so the job view gets its `stream_url`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from facecast.video import HLS_PLAYLIST

logger = logging.getLogger(__name__)

POLL_S = 0.01
"""How often the folder is looked at: a stat call, cheap beside rendering a frame."""


class StreamWatch:
    """A background thread over one job's HLS folder; use as a context manager around the render.

    Leaving the block publishes what is left (the last segment and the closed playlist).
    """

    def __init__(
        self,
        folder: Path,
        on_first: Callable[[], object],
        publish: Callable[[Path], None] | None = None,
    ) -> None:
        self.folder = folder
        self._on_first = on_first
        self._publish = publish
        self._published: dict[str, int] = {}
        self._playlist_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facecast-stream", daemon=True)

    def __enter__(self) -> StreamWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._step()  # the last segment and the playlist with its end tag
        except Exception:  # the store is down: `finish` tries again
            logger.warning("could not publish the end of the stream", exc_info=True)

    def finish(self) -> None:
        """Publish whatever the stream still lacks (after the block; raises when the store
        is down, for the caller to try again)."""
        self._step()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._step()
            except Exception:  # a failed upload is retried on the next look
                logger.warning("could not publish the stream", exc_info=True)

    def _step(self) -> None:
        playlist = self.folder / HLS_PLAYLIST
        if not playlist.is_file():
            return
        if self._publish is not None:
            self._publish_changes(playlist)
        if not self._playlist_seen:
            self._playlist_seen = True
            self._on_first()

    def _publish_changes(self, playlist: Path) -> None:
        """Media files first, then the playlist: a reader never sees a name it cannot fetch."""
        assert self._publish is not None
        names = _playlist_files(playlist)
        for path in sorted(self.folder.iterdir()):
            if path.name == HLS_PLAYLIST or path.name not in names:
                continue  # temporary files of the muxer, and segments not yet listed
            size = path.stat().st_size
            if self._published.get(path.name) != size:
                self._publish(path)
                self._published[path.name] = size
        size = playlist.stat().st_size
        if self._published.get(HLS_PLAYLIST) != size:
            self._publish(playlist)
            self._published[HLS_PLAYLIST] = size


def _playlist_files(playlist: Path) -> set[str]:
    """The file names a playlist refers to (its media segments and its init section)."""
    names: set[str] = set()
    for line in playlist.read_text(encoding="utf-8").splitlines():
        if line.startswith("#EXT-X-MAP:"):
            names.add(line.split('URI="', 1)[-1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            names.add(line.strip())
    return names

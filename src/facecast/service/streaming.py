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

PLAYLIST_SUFFIX = ".m3u8"
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
        playlist: str = HLS_PLAYLIST,
    ) -> None:
        self.folder = folder
        self.playlist = playlist
        """The playlist the muxer writes (video.m3u8 when index.m3u8 is a master playlist)."""
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
        if not (self.folder / self.playlist).is_file():
            return
        if self._publish is not None:
            self._publish_changes()
        if not self._playlist_seen:
            self._playlist_seen = True
            self._on_first()

    def _publish_changes(self) -> None:
        """Media files first, then the playlists, the entry (index.m3u8) last: a reader never
        sees a name it cannot fetch."""
        playlists = sorted(
            (p for p in self.folder.iterdir() if p.suffix == PLAYLIST_SUFFIX),
            key=lambda p: (p.name == HLS_PLAYLIST, p.name),
        )
        names = set().union(*(_playlist_files(p) for p in playlists))
        media = [
            path
            for path in sorted(self.folder.iterdir())
            # Not temporary files of the muxer, nor segments not yet listed.
            if path.suffix != PLAYLIST_SUFFIX and path.name in names
        ]
        for path in [*media, *playlists]:
            self._publish_if_changed(path)

    def _publish_if_changed(self, path: Path) -> None:
        assert self._publish is not None
        size = path.stat().st_size
        if self._published.get(path.name) != size:
            self._publish(path)
            self._published[path.name] = size


def _playlist_files(playlist: Path) -> set[str]:
    """The file names a playlist refers to (segments, its init section, renditions)."""
    names: set[str] = set()
    for line in playlist.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and 'URI="' in line:
            names.add(line.split('URI="', 1)[-1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            names.add(line.strip())
    return names

"""Photo intake through the live service: crafted uploads against the API's memory and CPU,
HEIC and small-face warnings through a real job, face choice, and POST /faces."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import WIDE_ATTACKS, astronaut_photo, png_declaring, progressive_scan_bomb, wide_png
from conftest_service import LiveService

API_GROWTH_MIB = 120
"""What crafted uploads may add to the API's memory (16 large PNGs added 1.3 GB before)."""
API_CPU_S = 3.0
"""API CPU for all attack uploads together (one scan bomb alone cost 11 s before)."""
WORKER_GROWTH_MIB = 450
"""What these jobs may add to a worker process (the 20000 x 2000 PNG added 1.7 GB through the
photo screen before): the small-face job loads Real-ESRGAN x4plus for its restore, about
200 MiB once per process; the photos themselves add well under 250 MiB."""
LARGE_PHOTO = (8000, 9375)
"""75 megapixels, 1.6 MB as a JPEG: under the test service's upload limit."""
SAMPLE_S = 0.01
CONCURRENT = 4
PAGE = 4096


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / (1024 * 1024)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process, started by any of its threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


@dataclass
class ProcessWatch:
    """Peak resident memory and CPU time of a process while a block runs."""

    pid: int
    before_mib: float = 0.0
    peak_mib: float = 0.0
    cpu_s: float = 0.0

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def cpu(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @contextmanager
    def watching(self) -> Iterator[ProcessWatch]:
        self.before_mib = self.peak_mib = self.rss_mib()
        cpu_before = self.cpu()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                self.peak_mib = max(self.peak_mib, self.rss_mib())
                done.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            yield self
        finally:
            done.set()
            sampler.join()
            self.cpu_s = self.cpu() - cpu_before


@pytest.fixture(scope="module")
def grace_img(portrait: Path) -> Image.Image:
    return Image.open(portrait).convert("RGB")


@pytest.fixture(scope="module")
def attacks(grace_img: Image.Image) -> dict[str, bytes]:
    files = {f"wide-{w}x{h}.png": wide_png(w, h) for w, h in WIDE_ATTACKS}
    files["scans.jpg"] = progressive_scan_bomb(grace_img)
    files["bomb.png"] = png_declaring(12_000, 12_000)
    files["huge.png"] = png_declaring(60_000, 60_000)
    return files


def _post(service: LiveService, name: str, data: bytes, **fields: str) -> httpx.Response:
    form = {"consent": "true", "size": "256", "text": "Hallo.", **fields}
    return service.client.post("/animate", data=form, files={"source_image": (name, data)})


def _post_into(answers: list[httpx.Response], service: LiveService, name: str, data: bytes) -> None:
    answers.append(_post(service, name, data))


def test_crafted_photos_are_refused_within_memory_and_cpu_bounds(
    live_service: LiveService, attacks: dict[str, bytes]
) -> None:
    """Each crafted file, four at a time: 4xx, the API stays small and answers meanwhile."""
    jobs_before = {p.name for p in live_service.data_dir.iterdir()}
    api = ProcessWatch(live_service.processes["api"].pid)
    answers: list[httpx.Response] = []
    health: list[int] = []
    with api.watching():
        for name, data in attacks.items():
            threads = [
                threading.Thread(target=_post_into, args=(answers, live_service, name, data))
                for _ in range(CONCURRENT)
            ]
            for thread in threads:
                thread.start()
            health.append(live_service.client.get("/health").status_code)
            for thread in threads:
                thread.join()
    assert len(answers) == CONCURRENT * len(attacks)
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_image"
    assert health == [200] * len(attacks)
    growth = api.peak_mib - api.before_mib
    print(f"API: {api.before_mib:.0f} MiB before, peak {api.peak_mib:.0f}, {api.cpu_s:.2f} s CPU")
    assert growth < API_GROWTH_MIB, f"the API grew by {growth:.0f} MiB"
    assert api.cpu_s < API_CPU_S, f"the API spent {api.cpu_s:.1f} s of CPU"
    assert {p.name for p in live_service.data_dir.iterdir()} <= jobs_before, "uploads left over"


@pytest.fixture(scope="module")
def two_faces(grace_img: Image.Image) -> bytes:
    astronaut = Image.open(astronaut_photo()).convert("RGB").resize((560, 560))
    canvas = Image.new("RGB", (grace_img.width + astronaut.width, 600), (128, 128, 128))
    canvas.paste(grace_img, (0, 0))
    canvas.paste(astronaut, (grace_img.width, 20))
    return _encode(canvas, "JPEG", quality=90)


def test_faces_lists_the_boxes(live_service: LiveService, two_faces: bytes) -> None:
    answer = live_service.client.post("/faces", files={"source_image": ("two.jpg", two_faces)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["width"], body["height"], body["rotation"]) == (1072, 600, 0)
    assert [face["index"] for face in body["faces"]] == [0, 1]
    centres = sorted((f["x0"] + f["x1"]) / 2 for f in body["faces"])
    assert centres[0] < 512 < centres[1], "one face on each side"
    for face in body["faces"]:
        assert 0 <= face["x0"] < face["x1"] <= 1072 and 0 <= face["y0"] < face["y1"] <= 600
    empty = Image.new("RGB", (300, 200), (90, 120, 150))
    answer = live_service.client.post(
        "/faces", files={"source_image": ("none.png", _encode(empty, "PNG"))}
    )
    assert answer.status_code == 200 and answer.json()["faces"] == []
    for data in (b"not a photo at all", wide_png(20_000, 2_000)):
        answer = live_service.client.post("/faces", files={"source_image": ("x.png", data)})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_image"


def test_heic_large_photo_small_face_and_face_choice_through_jobs(
    live_service: LiveService, grace_img: Image.Image, two_faces: bytes
) -> None:
    """Real jobs; the worker processes' memory is sampled meanwhile (a 75 MP JPEG among them)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    small = Image.new("RGB", (600, 600), (128, 128, 128))
    small.paste(grace_img.resize((85, 100)), (250, 250))
    heic = _encode(small, "HEIF", quality=90)
    large = _encode(grace_img.resize(LARGE_PHOTO, Image.Resampling.BILINEAR), "JPEG", quality=30)
    pool = children(live_service.processes["worker"].pid)
    before = {pid: rss_mib(pid) for pid in pool}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pool:
                peak[pid] = max(peak[pid], rss_mib(pid))
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        submitted = {
            "small": _post(live_service, "small.heic", heic, size="512"),
            "large": _post(live_service, "large.jpg", large),
            "second": _post(live_service, "two.jpg", two_faces, face_index="1"),
            "at": _post(live_service, "two.jpg", two_faces, face_at="800,200"),
            "missing": _post(live_service, "two.jpg", two_faces, face_index="5"),
        }
        for name, answer in submitted.items():
            assert answer.status_code == 202, f"{name}: {answer.text}"
        jobs = {name: live_service.wait_job(a.json()["job_id"]) for name, a in submitted.items()}
    finally:
        done.set()
        sampler.join()
    growth = max(peak[pid] - before[pid] for pid in pool)
    print(f"worker processes: {before} MiB before, peaks {peak} MiB")
    assert growth < WORKER_GROWTH_MIB, f"a worker process grew by {growth:.0f} MiB"
    assert jobs["large"]["status"] == "done", jobs["large"]
    assert jobs["small"]["status"] == "done", jobs["small"]
    # Blurred, or super-resolved where Real-ESRGAN is installed: either way, said.
    assert any("pixels high" in warning for warning in jobs["small"]["warnings"])
    for name in ("second", "at"):
        assert jobs[name]["status"] == "done", jobs[name]
        assert jobs[name]["warnings"] == []
    assert jobs["missing"]["status"] == "error"
    assert jobs["missing"]["error"]["code"] == "invalid_face_choice"
    bad = _post(live_service, "two.jpg", two_faces, face_at="left")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"

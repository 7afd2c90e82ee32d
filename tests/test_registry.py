"""Backends that describe themselves: the registry's descriptions feed the catalogue, `facecast
models` and the voice preference; a new renderer is one class plus one registration.

The audio-driven renderer below lives only in this file: it paints the portrait as bright as
the sound that plays during each frame is loud, and renders through the real pipeline and
encoder without any other file knowing its name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from facecast import post, render, weights
from facecast.audio import AudioTrack
from facecast.backends import catalogue, check_options, model_users, needs_gpu
from facecast.errors import BackendUnavailableError
from facecast.face import Portrait
from facecast.motion import CHANNELS, MotionFrame, motion_curves
from facecast.options import RenderOptions
from facecast.pipeline import render_talking_head
from facecast.registry import NOUNS, Capabilities, Description, MissingError, Registry
from facecast.speech import registry as speech
from facecast.video import iter_frames

RATE = 16_000
FPS = 10
FULL_SCALE_RMS = 0.35
"""Loudness painted at full brightness."""


class LoudnessAnimator:
    """The portrait, dimmed to black in silence and at full brightness when the sound is loud."""

    def __init__(self, portrait: Portrait) -> None:
        self._rgb = portrait.rgb.astype(np.float32)

    @property
    def size(self) -> tuple[int, int]:
        return self._rgb.shape[1], self._rgb.shape[0]

    def render_batch(self, frames: Sequence[MotionFrame], audio: AudioTrack) -> list[np.ndarray]:
        out = []
        for frame in frames:
            first, last = (
                round(frame.start * audio.sample_rate),
                round(frame.end * audio.sample_rate),
            )
            window = audio.samples[first:last]
            rms = float(np.sqrt(np.mean(window**2))) if len(window) else 0.0
            gain = min(rms / FULL_SCALE_RMS, 1.0)
            out.append(np.clip(self._rgb * gain + 0.5, 0, 255).astype(np.uint8))
        return out


class LoudnessRenderer:
    name = "loudness"
    capabilities = Capabilities(batch_size=4)

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> None:
        self.loads += 1

    def prepare(self, portrait: Portrait, *, expression: str = "keep") -> LoudnessAnimator:
        return LoudnessAnimator(portrait)


LOUDNESS: Description[LoudnessRenderer] = Description(
    "loudness", "renderer", lambda _models_dir: LoudnessRenderer(), licence="test-only"
)


@pytest.fixture
def loudness() -> Iterator[LoudnessRenderer]:
    renderer = LOUDNESS.make(Path("unused"))
    render.register(renderer, LOUDNESS)  # the one registration
    yield renderer
    render.REGISTRY.unregister("loudness")


def silence_then_tone(seconds: float = 1.0) -> AudioTrack:
    """`seconds` of silence, then as long a loud 220 Hz tone."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    return AudioTrack(np.concatenate([np.zeros(n), tone]).astype(np.float32), RATE)


def test_an_audio_driven_renderer_is_one_registration(
    loudness: LoudnessRenderer, grace: Path, tmp_path: Path
) -> None:
    options = RenderOptions(renderer="loudness", size=128, fps=FPS, watermark=None)
    check_options(options)  # the job checks know it without being told
    assert not needs_gpu(options)
    result = render_talking_head(
        grace, tmp_path / "loud.mp4", audio=silence_then_tone(), options=options
    )
    assert loudness.loads == 1
    brightness = np.array([frame.mean() for frame in iter_frames(result.video)])
    assert len(brightness) == result.frames == 2 * FPS
    quiet, loud = brightness[: FPS - 1], brightness[FPS + 1 :]
    assert quiet.max() < 8, brightness  # black while nothing plays
    assert loud.min() > 60, brightness  # the portrait while the tone plays
    listed = {entry.name: entry for entry in catalogue()}["loudness"]
    assert listed.available and listed.kind == "renderer"
    assert listed.fields()["licence"] == "test-only" and listed.fields()["batch_size"] == 4


def test_unregistered_renderers_are_gone(loudness: LoudnessRenderer) -> None:
    render.REGISTRY.unregister("loudness")
    assert render.REGISTRY.describe("loudness") is None
    assert "loudness" not in {entry.name for entry in catalogue()}
    with pytest.raises(BackendUnavailableError, match="Available renderers: warp"):
        check_options(RenderOptions(renderer="loudness"))


def test_the_catalogue_is_every_description() -> None:
    entries = {entry.name: entry for entry in catalogue()}
    names = {d.name for d in render.REGISTRY.descriptions()}
    names |= {d.name for d in post.REGISTRY.descriptions()}
    assert set(entries) == names
    assert {entry.kind for entry in entries.values()} <= {"renderer", "upscale", "refine"}
    for entry in entries.values():
        assert entry.available == (entry.capabilities is not None)
        assert entry.available or entry.missing, entry  # a missing one says what it lacks
        fields = entry.fields()
        assert fields["device"] == entry.description.device and fields["licence"]
    # A backend this server lacks still says where it runs and under which licence.
    lp = entries["liveportrait"]
    assert lp.fields()["device"] == "gpu" and "MIT" in str(lp.fields()["licence"])


def test_every_manifest_model_belongs_to_a_described_backend() -> None:
    users = model_users()
    assert {model.name for model in weights.manifest()} == set(users)
    assert users["realesrgan-x4plus"] == users["realesrgan-animevideov3"] == "realesrgan"


def test_one_word_for_each_kind() -> None:
    kinds = {d.kind for r in (render.REGISTRY, post.REGISTRY) for d in r.descriptions()}
    kinds |= {d.kind for d in speech.REGISTRY.descriptions()}
    assert kinds <= set(NOUNS)
    assert {d.kind for d in speech.REGISTRY.descriptions()} == {"speech"}


def test_the_default_voice_order_is_the_described_preference() -> None:
    order = [d.name for d in speech.REGISTRY.descriptions()]
    assert order.index("piper") < order.index("pico") < order.index("espeak") < order.index("xtts")
    ranked = [b.name for b in speech.ranked_backends()]
    assert ranked == [name for name in order if name in ranked]
    # A language only espeak-ng speaks gets espeak; one Pico speaks gets Pico (or Piper).
    assert speech.default_voice("fi").backend == "espeak"
    assert speech.default_voice("es").backend in {"piper", "pico"}


def test_a_description_says_what_is_missing(tmp_path: Path) -> None:
    def needs_a_file(models_dir: Path) -> LoudnessRenderer:
        if not (models_dir / "weights.bin").is_file():
            raise MissingError([str(models_dir / "weights.bin")], "copy it there")
        return LoudnessRenderer()

    described = Description("needy", "renderer", needs_a_file, device="gpu")
    registry: Registry[LoudnessRenderer] = Registry(
        "renderer", lambda: [described], models_dir=lambda: tmp_path
    )
    assert registry.names() == [] and registry.describe("needy") == described
    missing = registry.missing("needy")
    assert missing is not None and missing.missing == (str(tmp_path / "weights.bin"),)
    assert missing.how_to_get == "copy it there"
    with pytest.raises(BackendUnavailableError, match="'needy' is not available here"):
        registry.get("needy")
    fresh: Registry[LoudnessRenderer] = Registry(
        "renderer", lambda: [described], models_dir=lambda: tmp_path
    )
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert fresh.names() == ["needy"] and fresh.missing("needy") is None
    assert fresh.get("needy").loads == 1


def test_registering_without_a_description_needs_a_kind() -> None:
    plain: Registry[LoudnessRenderer] = Registry("post-processor", list)
    with pytest.raises(ValueError, match="needs a Description"):
        plain.register(LoudnessRenderer())
    typed: Registry[LoudnessRenderer] = Registry("renderer", list, kind="renderer")
    typed.register(LoudnessRenderer())
    described = typed.describe("loudness")
    assert described is not None and described.kind == "renderer" and described.device == "cpu"


def test_a_motion_frame_is_the_curves_at_one_frame() -> None:
    curves = motion_curves(silence_then_tone(0.5), FPS, seed=3)
    frame = curves.at(7)
    assert dict(frame.values) == curves.frame(7) and set(frame.values) == set(CHANNELS)
    assert (frame.start, frame.end) == (0.7, 0.8)
    assert frame.jaw == curves.jaw[7] and frame.blinks == (curves.blink_a[7], curves.blink_b[7])
    assert frame.head == (curves.yaw[7], curves.pitch[7], curves.roll[7])


def test_variants_are_marked_by_their_backend_not_by_name_checks() -> None:
    espeak = [v for v in speech.catalogue() if v.backend == "espeak"]
    assert [v.name for v in espeak if not v.variant] == ["default"]
    assert len(espeak) > 10  # the variants, listed by `facecast voices --all`
    assert not any(v.variant for v in speech.catalogue() if v.natural)

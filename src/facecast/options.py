"""The one typed options object: built once by the route or the CLI, carried in the job request,
handed to the pipeline unchanged, and hashed for result reuse."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

Framing = Literal["square", "portrait", "landscape", "full"]
"""Output framings: a head-and-shoulders square, 9:16 or 16:9 (`size` the shorter side), or
the whole photo (longer side `size`)."""
FRAMINGS: tuple[str, ...] = get_args(Framing)
VideoFormat = Literal["mp4", "webm"]
"""H.264/AAC in MP4 (the default: streams live, plays everywhere) or VP9/Opus in WebM."""
VIDEO_FORMATS: tuple[str, ...] = get_args(VideoFormat)

CaptionMode = Literal["vtt", "srt", "burn"]
"""Captions: a WebVTT or SRT file beside the video, or drawn into the frames (`burn`, with a
WebVTT file beside it too)."""
CAPTION_MODES: tuple[str, ...] = get_args(CaptionMode)

EXPRESSIONS = ("keep", "neutral")
"""What the mouth rests in: `keep` the photo's own expression (a smile with teeth stays one in
pauses), `neutral` a closed, relaxed mouth. A photo caught mid-word, yawning or with the
tongue out rests closed either way."""

# Speech prosody, declared once: the CLI, the API forms and the pipeline validate from these.
MIN_RATE, MAX_RATE, DEFAULT_RATE = 0.5, 2.0, 1.0
"""Speaking rate: 2.0 says the same in half the time (pitch kept)."""
MIN_PITCH, MAX_PITCH, DEFAULT_PITCH = -12.0, 12.0, 0.0
"""Pitch shift in semitones (an octave each way; formants kept)."""
MIN_VOLUME, MAX_VOLUME, DEFAULT_VOLUME = -20.0, 10.0, 0.0
"""Gain in dB: -20 is a tenth of the amplitude; above 0 the peaks are held below -1 dBFS,
so a voice already near full scale gets no louder instead of clipping."""


PROSODY_BOUNDS = {
    "rate": (MIN_RATE, MAX_RATE),
    "pitch": (MIN_PITCH, MAX_PITCH),
    "volume": (MIN_VOLUME, MAX_VOLUME),
}


def check_prosody(rate: float, pitch: float, volume: float) -> None:
    """ValueError naming the first of rate, pitch, volume outside its bounds (or not a number)."""
    for name, value in (("rate", rate), ("pitch", pitch), ("volume", volume)):
        low, high = PROSODY_BOUNDS[name]
        if not low <= value <= high:  # NaN fails too
            raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value:g}.")


@dataclass(frozen=True)
class RenderOptions:
    """What the caller may choose about a render."""

    fps: int = 25
    size: int = 512
    full_frame: bool = False
    """The whole photo (the same as framing="full")."""
    framing: Framing = "square"
    """One of FRAMINGS."""
    format: VideoFormat = "mp4"
    """The video's container and codecs (VideoFormat)."""
    lang: str = "de"
    voice: str | None = None
    """The backend's own voice name; None: the backend's voice for `lang`."""
    seed: int = 0
    speech_backend: str | None = None
    """None: the default voice for `lang` (facecast.speech.registry.default_voice)."""
    renderer: str = "warp"
    watermark: str | None = None
    """Visible text drawn small and semi-transparent in the bottom-right corner."""
    face_index: int | None = None
    """Which face to animate when the photo shows several: 0 is the largest."""
    face_at: tuple[float, float] | None = None
    """Animate the face at this point (x, y in pixels of the upright photo, as POST /faces
    reports them); `face_index` wins when both are given."""
    upscale: int | None = None
    """Real-ESRGAN factor (2 or 4) for the output frames; None keeps `size`."""
    refine: str | None = None
    """Post-processor that re-renders the mouth from the audio (wav2lip); None: none."""
    restore: bool = True
    """Super-resolve a face too small for `size` (Real-ESRGAN x4plus) before rigging."""
    force_cpu: bool = False
    """Run a GPU-class renderer on the CPU even for a long clip (slow)."""
    expression: str = "keep"
    """The mouth's rest pose, one of EXPRESSIONS."""
    voice_sample: Path | None = None
    """A recording (3-30 s) whose voice a cloning speech backend speaks `text` in."""
    lexicon: str | None = None
    """The user's pronunciations in facecast.speech.script's lexicon format (`[de]` sections
    of `word = how to say it` lines)."""
    rate: float = DEFAULT_RATE
    """Speaking rate of synthesised speech (MIN_RATE..MAX_RATE); the mouth follows."""
    pitch: float = DEFAULT_PITCH
    """Pitch shift of synthesised speech in semitones (MIN_PITCH..MAX_PITCH)."""
    volume: float = DEFAULT_VOLUME
    """Gain of synthesised speech in dB (MIN_VOLUME..MAX_VOLUME)."""
    captions: CaptionMode | None = None
    """Captions from the spoken words (one of CAPTION_MODES); None: none. A recording gets
    them only with its transcript."""
    caption_highlight: bool = True
    """Burned-in captions colour the word being spoken."""

    @property
    def shape(self) -> str:
        """The framing that applies: "full" when `full_frame` says so, else `framing`."""
        return "full" if self.full_frame else self.framing

    def __post_init__(self) -> None:
        if self.expression not in EXPRESSIONS:
            raise ValueError(
                f"expression must be one of {', '.join(EXPRESSIONS)}, not {self.expression!r}"
            )
        check_prosody(self.rate, self.pitch, self.volume)
        if self.captions is not None and self.captions not in CAPTION_MODES:
            raise ValueError(
                f"captions must be one of {', '.join(CAPTION_MODES)}, not {self.captions!r}"
            )

    def fingerprint(self) -> str:
        """Every field but `voice_sample` as canonical JSON: what result reuse hashes (the job
        service keys a sample by its content, not by where a worker keeps it). Rate, pitch
        and volume are in it: the same text at another rate is another result."""
        fields = asdict(self)
        fields.pop("voice_sample")
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

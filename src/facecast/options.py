"""The one declaration of every render and speech option.

`RenderOptions` is built once (by the CLI from its flags, by the service from a request's
form), carried in the job request and handed to the pipeline unchanged. Each field declares
its type, bounds, default and help, and an `Edge` that says where else it shows: a field of
the POST /animate form (and of POST /tts when it is about speech), a flag of `facecast render`
/ `batch` / `demo` (and of `facecast tts`), and which content-hash keys it changes (`Key`).
The form models (facecast.service.forms), the CLI's flags (facecast.cli_options), the
Python client's form (`form_text`), the OpenAPI schema and the cache keys (`cache_key`) are
derived from these declarations: adding an option is one field here plus its use.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs

Framing = Literal["square", "portrait", "landscape", "full"]
"""Output framings: a head-and-shoulders square, 9:16 or 16:9 (`size` the shorter side), or
the whole photo (longer side `size`)."""
FRAMINGS: tuple[str, ...] = get_args(Framing)
VideoFormat = Literal["mp4", "webm"]
"""H.264/AAC in MP4 (the default: streams live, plays everywhere) or VP9/Opus in WebM."""
VIDEO_FORMATS: tuple[str, ...] = get_args(VideoFormat)
Expression = Literal["keep", "neutral"]
"""What the mouth rests in: `keep` the photo's own expression (a smile with teeth stays one in
pauses), `neutral` a closed, relaxed mouth. A photo caught mid-word, yawning or with the
tongue out rests closed either way."""
EXPRESSIONS: tuple[str, ...] = get_args(Expression)
CaptionMode = Literal["vtt", "srt", "burn"]
"""Captions: a WebVTT or SRT file beside the video, or drawn into the frames (`burn`, with a
WebVTT file beside it too)."""
CAPTION_MODES: tuple[str, ...] = get_args(CaptionMode)

# Speech prosody: the bounds the fields below declare, named for the speech stage and the apps.
MIN_RATE, MAX_RATE, DEFAULT_RATE = 0.5, 2.0, 1.0
"""Speaking rate: 2.0 says the same in half the time (pitch kept)."""
MIN_PITCH, MAX_PITCH, DEFAULT_PITCH = -12.0, 12.0, 0.0
"""Pitch shift in semitones (an octave each way; formants kept)."""
MIN_VOLUME, MAX_VOLUME, DEFAULT_VOLUME = -20.0, 10.0, 0.0
"""Gain in dB: -20 is a tenth of the amplitude; above 0 the peaks are held below -1 dBFS,
so a voice already near full scale gets no louder instead of clipping."""
MAX_SEED = 2**31 - 1
MAX_FACE_INDEX = 63
LANG_PATTERN = r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$"
"""Language codes as the speech backends name them: de, en-us, pt_BR, cmn, ..."""
LEXICON_MAX_CHARS = 65536
NAME_MAX_CHARS = 64
"""Longest backend name (renderer, refiner) a request may give."""
VOICE_MAX_CHARS = 128
POINT_MAX_CHARS = 32
MAX_POINT = 100_000.0
"""A point at or past this many pixels is outside any photo the service decodes."""


class Key(StrEnum):
    """The content-hash keys an option can change."""

    RESULT = "result"
    """Result reuse: another value, another video (or speech), so no earlier result fits."""
    RIG = "rig"
    """The per-process cache of rigged photos (pipeline.photo_key): another value, another
    analysed and framed photo."""


RESULT_ONLY = frozenset({Key.RESULT})
RESULT_AND_RIG = frozenset({Key.RESULT, Key.RIG})


@dataclasses.dataclass(frozen=True)
class Wire:
    """How an option that is not a plain number, word or switch is written as text (in a
    form field or on the command line); the field reads the text back itself."""

    write: Callable[[Any], str]
    max_length: int
    metavar: str


@dataclasses.dataclass(frozen=True)
class Edge:
    """Where an option shows beyond the engine, and which cache keys it changes."""

    keys: frozenset[Key] = RESULT_ONLY
    form: bool = True
    """A field of the POST /animate form. False: the server sets it (watermark, the resolved
    speech backend), it travels as an upload (voice sample), or the service cannot honour it."""
    speech: bool = False
    """About speech alone: also a field of POST /tts and a flag of `facecast tts`. A job with
    a recording drops these (they change synthesised speech only)."""
    flag: str | None = ""
    """The CLI's flag without dashes; "" the field's name with dashes, None no flag."""
    server_default: bool = False
    """A request that leaves it out gets the service's setting (FACECAST_DEFAULT_<NAME>), not
    the default declared here."""
    file: bool = False
    """The CLI takes a path and the option is the file's UTF-8 text."""
    wire: Wire | None = None


def _read_point(value: Any) -> Any:
    """`x,y` text as a point (other values are left to the field's own validation)."""
    if not isinstance(value, str):
        return value
    try:
        x, y = (float(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"a point is written x,y in pixels, not {value[:32]!r}") from None
    return (x, y)


def _on_a_photo(point: tuple[float, float] | None) -> tuple[float, float] | None:
    if point is not None and not all(0 <= v < MAX_POINT for v in point):  # NaN fails too
        raise ValueError(f"the point {_write_point(point)} is outside any photo")
    return point


def _write_point(point: tuple[float, float]) -> str:
    return "{:g},{:g}".format(*point)


def _even(size: int) -> int:
    return size - size % 2


POINT = Wire(write=_write_point, max_length=POINT_MAX_CHARS, metavar="X,Y")

RATE_HELP = (
    f"Speaking rate of `text`, {MIN_RATE:g}-{MAX_RATE:g} (2: twice as fast, pitch kept); "
    "the mouth follows."
)
PITCH_HELP = f"Pitch shift of `text` in semitones, {MIN_PITCH:g} to {MAX_PITCH:g}."
VOLUME_HELP = f"Gain of `text` in dB, {MIN_VOLUME:g} to {MAX_VOLUME:g}; peaks stay below -1 dBFS."
LEXICON_HELP = (
    "Your pronunciations: `[de]` / `[en]` sections of `word = how to say it` lines, applied "
    "before numbers and abbreviations are written out (POST /text/normalize shows the result)."
)
VOICE_HELP = (
    "`backend:voice` (e.g. pico:de-DE, pico:de-DE-male, espeak:f3), a voice name from GET "
    "/voices or `facecast voices`, or male / female (the best voice of that kind in `lang`); "
    "default: the language's most natural voice."
)


@dataclass(frozen=True)
class RenderOptions:
    """What the caller may choose about a render (and about speech)."""

    fps: Annotated[
        int, Field(ge=1, le=60, description="Frames per second."), Edge(server_default=True)
    ] = 25
    size: Annotated[
        int,
        Field(ge=128, le=2048, description="The video's shorter side in pixels (made even)."),
        AfterValidator(_even),
        Edge(RESULT_AND_RIG, server_default=True),
    ] = 512
    full_frame: Annotated[
        bool,
        Field(description="Animate the whole photo, not a crop (framing=full)."),
        Edge(RESULT_AND_RIG),
    ] = False
    framing: Annotated[
        Framing,
        Field(
            description="square, portrait 9:16 or landscape 16:9, framed on the face with "
            "`size` the shorter side (the photo extended where it is too small, never "
            "stretched); full: the whole photo, longer side `size`."
        ),
        Edge(RESULT_AND_RIG),
    ] = "square"
    format: Annotated[
        VideoFormat,
        Field(
            description="mp4 (H.264/AAC: plays live while it renders) or webm (VP9/Opus, no "
            "live stream); the CLI's default: from the output's name."
        ),
        Edge(),
    ] = "mp4"
    lang: Annotated[
        str,
        Field(pattern=LANG_PATTERN, description="Language of the text to speak."),
        Edge(speech=True, server_default=True),
    ] = "de"
    voice: Annotated[
        str | None,
        Field(max_length=VOICE_MAX_CHARS, description=VOICE_HELP),
        Edge(speech=True),
    ] = None
    """The backend's own voice name once resolved (pipeline.choose_voice); None: the
    backend's voice for `lang`."""
    seed: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_SEED,
            description="Blinks and head motion: the same inputs and seed give the same video, "
            "here or on a server.",
        ),
        Edge(),
    ] = 0
    speech_backend: Annotated[str | None, Edge(form=False, flag=None)] = None
    """Set when the voice is resolved; None: the default voice for `lang`
    (facecast.speech.registry.default_voice)."""
    renderer: Annotated[
        str,
        Field(max_length=NAME_MAX_CHARS, description="warp or liveportrait; see GET /backends."),
        Edge(RESULT_AND_RIG),
    ] = "warp"
    watermark: Annotated[str | None, Edge(form=False, flag=None)] = None
    """Visible text drawn small and semi-transparent in the bottom-right corner (the
    service's FACECAST_WATERMARK)."""
    face_index: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_FACE_INDEX,
            description="Which face to animate when the photo shows several: 0 is the "
            "largest (POST /faces, `facecast faces`).",
        ),
        Edge(RESULT_AND_RIG, flag="face"),
    ] = None
    face_at: Annotated[
        tuple[float, float] | None,
        BeforeValidator(_read_point),
        AfterValidator(_on_a_photo),
        Field(
            description="Animate the face at this point, `x,y` in pixels of the upright "
            "photo; `face_index` wins when both are given."
        ),
        Edge(RESULT_AND_RIG, wire=POINT),
    ] = None
    upscale: Annotated[
        int | None,
        Field(
            description="Real-ESRGAN factor 2 or 4: the video is size x upscale. On a CPU "
            "about 1.9 s a 512 px frame (see GET /backends)."
        ),
        Edge(),
    ] = None
    refine: Annotated[
        str | None,
        Field(max_length=NAME_MAX_CHARS, description="Mouth refinement: wav2lip."),
        Edge(),
    ] = None
    restore: Annotated[
        bool,
        Field(description="Super-resolve a face too small for `size` (Real-ESRGAN) first."),
        Edge(RESULT_AND_RIG),
    ] = True
    force_cpu: Annotated[
        bool,
        Field(description="Render a long clip with a GPU renderer on a CPU anyway (slow)."),
        Edge(),
    ] = False
    expression: Annotated[
        Expression,
        Field(
            description="The mouth at rest: keep the photo's expression (a smile with teeth "
            "stays one in pauses) or neutral (a closed, relaxed mouth). A photo caught "
            "mid-word or with the tongue out rests closed either way."
        ),
        Edge(RESULT_AND_RIG),
    ] = "keep"
    voice_sample: Annotated[
        Path | None,
        Field(
            description="Speak the text in the voice of this 3-30 s recording (needs a "
            "cloning backend: XTTS)."
        ),
        # Keyed by its content where it matters (the job service), not by where it lies.
        Edge(frozenset(), form=False, speech=True, flag="clone-voice"),
    ] = None
    lexicon: Annotated[
        str | None,
        Field(max_length=LEXICON_MAX_CHARS, description=LEXICON_HELP),
        Edge(speech=True, file=True),
    ] = None
    """The user's pronunciations in facecast.speech.script's lexicon format."""
    rate: Annotated[
        float, Field(ge=MIN_RATE, le=MAX_RATE, description=RATE_HELP), Edge(speech=True)
    ] = DEFAULT_RATE
    pitch: Annotated[
        float, Field(ge=MIN_PITCH, le=MAX_PITCH, description=PITCH_HELP), Edge(speech=True)
    ] = DEFAULT_PITCH
    volume: Annotated[
        float, Field(ge=MIN_VOLUME, le=MAX_VOLUME, description=VOLUME_HELP), Edge(speech=True)
    ] = DEFAULT_VOLUME
    captions: Annotated[
        CaptionMode | None,
        Field(
            description="Captions from the spoken words: vtt or srt, a caption file beside the "
            "video (out.vtt / out.srt; the job's `captions_url`); burn, drawn into the frames "
            "(and WebVTT beside them). A live stream gets a WebVTT subtitle rendition. A "
            "recording needs its transcript."
        ),
        Edge(),
    ] = None
    caption_highlight: Annotated[
        bool,
        Field(description="Burned-in captions colour the word being spoken."),
        Edge(),
    ] = True

    @model_validator(mode="wrap")
    @classmethod
    def _one_plain_line(cls, values: ArgsKwargs, handler: Callable[[ArgsKwargs], Any]) -> Any:
        """A bad value is one plain sentence naming the option (the CLI prints it as is)."""
        try:
            return handler(values)
        except ValidationError as exc:
            raise ValueError(plain_message(cls, exc)) from None

    @property
    def shape(self) -> str:
        """The framing that applies: "full" when `full_frame` says so, else `framing`."""
        return "full" if self.full_frame else self.framing

    def cache_key(self, key: Key) -> str:
        """The fields marked as changing `key`, as canonical JSON."""
        chosen = {
            item.name: getattr(self, item.name)
            for item, edge in option_fields(type(self))
            if key in edge.keys
        }
        return json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)

    def fingerprint(self) -> str:
        """What result reuse hashes: every field marked `Key.RESULT` (all but the voice
        sample, which the job service keys by its content)."""
        return self.cache_key(Key.RESULT)


# --------------------------------------------------------------------------- reading the fields


def option_fields(cls: type[RenderOptions]) -> Iterator[tuple[dataclasses.Field[Any], Edge]]:
    """Every field of `cls` (RenderOptions or a subclass) with its Edge, in declared order."""
    declared = edges(cls)
    for item in dataclasses.fields(cls):
        yield item, declared[item.name]


def edges(cls: type[RenderOptions]) -> dict[str, Edge]:
    """Field name -> its Edge (a field declared without one: a plain result-changing option)."""
    return {
        name: next((m for m in info.metadata if isinstance(m, Edge)), Edge())
        for name, info in field_infos(cls).items()
    }


def field_infos(cls: type[RenderOptions]) -> dict[str, FieldInfo]:
    """Field name -> pydantic's FieldInfo (type, bounds, default, description)."""
    infos: dict[str, FieldInfo] = cls.__pydantic_fields__  # type: ignore[attr-defined]
    return infos


def bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    """The (low, high) a numeric field declares; None where it declares none."""
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    return (
        None if low is None else float(low),  # type: ignore[arg-type]
        None if high is None else float(high),  # type: ignore[arg-type]
    )


def form_text(options: RenderOptions) -> dict[str, str]:
    """The POST /animate form fields for `options`, written as text: every form option but
    those at their declared default (the service assumes that itself). Options the service
    fills from its own settings (fps, size, lang) are always sent, as a local render has them."""
    fields: dict[str, str] = {}
    infos = field_infos(type(options))
    for item, edge in option_fields(type(options)):
        value = getattr(options, item.name)
        if not edge.form or value is None:
            continue
        if not edge.server_default and value == infos[item.name].default:
            continue
        fields[item.name] = as_text(edge, value)
    return fields


def server_defaults(cls: type[RenderOptions] = RenderOptions) -> tuple[str, ...]:
    """The options the service fills from its settings when a request leaves them out."""
    return tuple(name for name, edge in edges(cls).items() if edge.server_default)


def without_speech(options: RenderOptions) -> dict[str, Any]:
    """The speech options a job that speaks no text resets to their defaults (replace()
    arguments): a recording is used as it is, so another voice or rate must not make another
    result. The language stays: it is the recording's language too."""
    infos = field_infos(type(options))
    return {
        item.name: infos[item.name].default
        for item, edge in option_fields(type(options))
        if edge.speech and edge.form and not edge.server_default
    }


def as_text(edge: Edge, value: Any) -> str:
    """One option's value as a form field or a command-line argument spells it."""
    if edge.wire is not None:
        return edge.wire.write(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def options_error(exc: ValueError) -> str:
    """The one sentence a RenderOptions refusal says (its ValidationError wraps it)."""
    if isinstance(exc, ValidationError):
        return str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
    return str(exc)


def plain_message(cls: type[RenderOptions], exc: ValidationError) -> str:
    """The first error of `exc` as one sentence that names the option."""
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else "options"
    value = error.get("input")
    info = field_infos(cls).get(name)
    if info is not None and error["type"] in BOUND_ERRORS:
        low, high = bounds(info)
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        if low is not None and high is not None:
            return f"{name} must be between {low:g} and {high:g}, not {shown}."
        if low is not None:
            return f"{name} must be at least {low:g}, not {shown}."
        if high is not None:
            return f"{name} must be at most {high:g}, not {shown}."
    if error["type"] == "literal_error" and info is not None:
        choices = ", ".join(map(str, _choices(info.annotation)))
        return f"{name} must be one of {choices}, not {value!r}."
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}" if error["loc"] else message


BOUND_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "finite_number"})


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The values of a Literal, also inside `Literal[...] | None`."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return tuple(c for part in get_args(annotation) for c in _choices(part))


def _declared_bounds(name: str) -> tuple[float, float]:
    low, high = bounds(field_infos(RenderOptions)[name])
    assert low is not None and high is not None, name
    return low, high


PROSODY_BOUNDS = {name: _declared_bounds(name) for name in ("rate", "pitch", "volume")}
"""(low, high) of rate, pitch and volume, as the fields declare them."""


def check_prosody(rate: float, pitch: float, volume: float) -> None:
    """ValueError naming the first of rate, pitch, volume outside its bounds (or not a number)."""
    for name, value in (("rate", rate), ("pitch", pitch), ("volume", volume)):
        low, high = PROSODY_BOUNDS[name]
        if not low <= value <= high:  # NaN fails too
            raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value:g}.")

"""The request forms of POST /animate and POST /tts, derived from RenderOptions' fields.

Each option marked for the form (facecast.options.Edge) becomes a field with the option's
type, bounds, default and help; left out (or null, or empty) it is the option's default, or
the service's setting for the options that have one (fps, size, lang: no default shown).
`chosen_options` turns a parsed form back into RenderOptions arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from facecast.options import Edge, RenderOptions, field_infos, option_fields

MAX_OFFER_CHARS = 64_000
"""An SDP offer with a few hundred candidates is well under this."""


class AnimateFields(BaseModel):
    """The POST /animate fields that are about the job, not the render (uploads aside)."""

    consent: bool = Field(
        False, description="Must be true: the uploader confirms the person agreed."
    )
    audio_id: str | None = Field(None, description="An audio_id from POST /tts.")
    text: str | None = Field(None, description="Text to speak (synthesised in the worker).")
    webhook: str | None = Field(
        None, max_length=2048, description="URL that gets a signed POST when the job ends."
    )
    client_ref: str | None = Field(
        None, max_length=256, description="Your reference; returned in views and webhooks."
    )
    transcript: str | None = Field(
        None,
        description="The words the recording (`audio` or `audio_id`) says: its captions are "
        "aligned from them.",
    )


class LiveFields(BaseModel):
    """The POST /live fields that are about the session, not the render (the photo aside)."""

    offer: str = Field(
        max_length=MAX_OFFER_CHARS,
        description="The client's SDP offer: receives one video and one audio track and "
        "opens a data channel labelled `facecast` (see docs/live.md for its messages).",
    )
    consent: bool = Field(
        False, description="Must be true: the uploader confirms the person agreed."
    )


class TtsFields(BaseModel):
    """The POST /tts fields that are about the job, not the speech."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="What to say.")
    webhook: str | None = Field(
        None, max_length=2048, description="URL that gets a signed POST when the job ends."
    )
    client_ref: str | None = Field(
        None, max_length=256, description="Your reference; returned in views and webhooks."
    )


def _form_field(name: str, info: FieldInfo, edge: Edge) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one option as a form field."""
    constraints = [m for m in info.metadata if not isinstance(m, Edge)]
    if edge.wire is not None:  # written as text; RenderOptions reads it back
        kind: Any = Annotated[str, Field(max_length=edge.wire.max_length)]
    else:
        kind = Annotated[info.annotation, *constraints] if constraints else info.annotation
    if info.annotation is bool:
        return kind, Field(info.default, description=info.description)
    # None (or an empty field) is the default too, as it always was for these fields.
    if edge.server_default:
        described = (
            f"{info.description} Default: the server's FACECAST_DEFAULT_{name.upper()} "
            f"({info.default} unless set)."
        )
        return kind | None, Field(None, description=described)
    return kind | None, Field(info.default, description=info.description)


LIVE_OPTIONS = frozenset({"lang", "voice", "face_index", "face_at", "size", "fps"})
"""The options a live session takes; the rest are a video's (format, captions, upscale...)."""

_MADE: dict[tuple[str, type[RenderOptions]], Any] = {}


def _made(name: str, options: type[RenderOptions], make: Callable[[], Any]) -> Any:
    """Each form model is made once per options class (FastAPI and OpenAPI see one class)."""
    if (name, options) not in _MADE:
        _MADE[name, options] = make()
    return _MADE[name, options]


def _option_fields(
    options: type[RenderOptions], speech_only: bool, only: frozenset[str] | None = None
) -> dict[str, Any]:
    infos = field_infos(options)
    return {
        item.name: _form_field(item.name, infos[item.name], edge)
        for item, edge in option_fields(options)
        if edge.form and (edge.speech or not speech_only) and (only is None or item.name in only)
    }


def animate_form(options: type[RenderOptions] = RenderOptions) -> type[AnimateFields]:
    """The POST /animate form model: the job's fields and every form option of `options`."""
    return _made(
        "AnimateForm",
        options,
        lambda: create_model(
            "AnimateForm",
            __base__=AnimateFields,
            __doc__="Form fields of POST /animate (the uploads are parts of their own).",
            **_option_fields(options, speech_only=False),
        ),
    )


def live_form(options: type[RenderOptions] = RenderOptions) -> type[LiveFields]:
    """The POST /live form model: the session's fields and the options a live session takes
    (LIVE_OPTIONS), declared by `options` like every other form's."""
    return _made(
        "LiveForm",
        options,
        lambda: create_model(
            "LiveForm",
            __base__=LiveFields,
            __doc__="Form fields of POST /live (the photo is a part of its own).",
            **_option_fields(options, speech_only=False, only=LIVE_OPTIONS),
        ),
    )


def speech_form(options: type[RenderOptions] = RenderOptions) -> type[TtsFields]:
    """The POST /tts body model: the job's fields and the speech options of `options`."""
    return _made(
        "TtsRequest",
        options,
        lambda: create_model(
            "TtsRequest",
            __base__=TtsFields,
            __doc__="JSON body of POST /tts.",
            **_option_fields(options, speech_only=True),
        ),
    )


def speech_upload_form(options: type[RenderOptions] = RenderOptions) -> type[TtsFields]:
    """The multipart body of POST /tts: `speech_form` plus a voice sample for cloning."""
    sample = Field(
        None,
        description="3-30 s recording (any audio format) of the voice to clone; needs a "
        "cloning backend (XTTS).",
    )
    return _made(
        "TtsForm",
        options,
        lambda: create_model(
            "TtsForm",
            __base__=speech_form(options),
            __doc__="Multipart body of POST /tts (adds a voice sample for cloning backends).",
            voice_clone_wav=(bytes | None, sample),
        ),
    )


def chosen_options(form: BaseModel, options: type[RenderOptions] = RenderOptions) -> dict[str, Any]:
    """The options a parsed form sets, as RenderOptions arguments: a field left out, null or
    empty (browsers send empty fields) is not among them."""
    fields = type(form).model_fields
    values = (
        (item.name, getattr(form, item.name))
        for item, edge in option_fields(options)
        if edge.form and item.name in fields
    )
    return {name: value for name, value in values if value is not None and value != ""}

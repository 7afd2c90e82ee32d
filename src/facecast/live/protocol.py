"""The data channel's messages (label `facecast`, JSON text), parsed into typed values.

Client -> server:
    {"type": "say", "id": "...", "text": "..."}
    {"type": "audio", "id": "...", "pcm": "<base64 s16le mono>", "rate": 16000, "final": false}
    {"type": "clear"}
Server -> client:
    {"type": "speech_started", "id": "..."}
    {"type": "speech_ended", "id": "...", "interrupted": false}
    {"type": "error", "code": "...", "message": "...", "id": "..."}   (id when one was sent)
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from facecast.errors import ErrorCode, FacecastError

CHANNEL_LABEL = "facecast"
MAX_MESSAGE_BYTES = 1_000_000
"""Largest message accepted (about 23 s of 16 kHz audio per chunk, base64)."""
MAX_ID_CHARS = 128
DEFAULT_PCM_RATE = 16_000


class MessageError(FacecastError):
    """A message that cannot be understood; answered with an error message, never a hang-up."""

    code = ErrorCode.INVALID_MESSAGE

    def __init__(self, message: str, utterance: str | None = None) -> None:
        super().__init__(message)
        self.utterance = utterance


@dataclass(frozen=True)
class Say:
    """Speak `text` after everything already queued."""

    id: str
    text: str


@dataclass(frozen=True)
class AudioChunk:
    """A piece of an utterance another system synthesised; `final` ends it."""

    id: str
    pcm: bytes
    rate: int
    final: bool


@dataclass(frozen=True)
class Clear:
    """Stop speaking now and drop what is queued."""


Message = Say | AudioChunk | Clear


def _id(body: dict[str, object]) -> str:
    value = body.get("id")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise MessageError(f"`id` must be a string of 1 to {MAX_ID_CHARS} characters.")
    return value


def parse(raw: str | bytes) -> Message:
    """One message; MessageError says what is wrong with it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"A message may have at most {MAX_MESSAGE_BYTES} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MessageError("Messages are JSON objects.") from None
    if not isinstance(body, dict):
        raise MessageError("Messages are JSON objects.")
    kind = body.get("type")
    if kind == "clear":
        return Clear()
    if kind == "say":
        utterance = _id(body)
        text = body.get("text")
        if not isinstance(text, str):
            raise MessageError("`say` needs `text`, a string.", utterance)
        return Say(utterance, text)
    if kind == "audio":
        utterance = _id(body)
        return _audio(body, utterance)
    raise MessageError(f"Unknown message type {str(kind)[:32]!r}: say, audio or clear.")


def _audio(body: dict[str, object], utterance: str) -> AudioChunk:
    pcm, rate, final = body.get("pcm", ""), body.get("rate", DEFAULT_PCM_RATE), body.get("final")
    if not isinstance(pcm, str):
        raise MessageError("`pcm` is base64 text.", utterance)
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise MessageError("`rate` is a whole number of samples a second.", utterance)
    if not isinstance(final, bool | None):
        raise MessageError("`final` is true or false.", utterance)
    try:
        data = base64.b64decode(pcm, validate=True)
    except (binascii.Error, ValueError):
        raise MessageError("`pcm` is not valid base64.", utterance) from None
    return AudioChunk(utterance, data, rate, bool(final))


def error_message(code: str, message: str, utterance: str | None = None) -> str:
    """The JSON text of an error message."""
    body: dict[str, object] = {"type": "error", "code": code, "message": message}
    if utterance is not None:
        body["id"] = utterance
    return json.dumps(body)

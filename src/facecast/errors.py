"""Errors a user can cause and fix. Each carries a stable code for the API and a plain message."""

from __future__ import annotations


class FacecastError(Exception):
    """Base class: bad input or an unavailable feature; never a bug."""

    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImageError(FacecastError):
    code = "invalid_image"


class NoFaceError(FacecastError):
    code = "no_face"


class FaceChoiceError(FacecastError):
    """The chosen face (`face_index`, `face_at`) is not in the photo."""

    code = "invalid_face_choice"


class InvalidAudioError(FacecastError):
    code = "invalid_audio"


class AudioTooLongError(FacecastError):
    code = "audio_too_long"


class InvalidTextError(FacecastError):
    code = "invalid_text"


class UnsupportedLanguageError(FacecastError):
    code = "unsupported_language"


class BackendUnavailableError(FacecastError):
    code = "backend_unavailable"


class CanceledError(FacecastError):
    code = "canceled"


class SpeechTooLongError(FacecastError):
    """The text would take longer to say than FACECAST_MAX_AUDIO_SECONDS."""

    code = "speech_too_long"


class VoiceSampleError(FacecastError):
    """A voice sample for cloning that is missing, unreadable, too short or too long."""

    code = "invalid_voice_sample"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

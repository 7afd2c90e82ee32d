"""Words for audio that came without them: a backend that gives none (Piper, XTTS) or a
recording with its transcript.

espeak-ng speaks the same text with its word events, and `facecast.speech.align` carries them
onto the audio (phrases paired at pauses, then time-warped), as it does Pico's phonemes. A
language espeak-ng does not speak, or audio the warp cannot follow, gets the words spread over
the sounding stretch in proportion to their letters.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from facecast.audio import AudioTrack
from facecast.errors import FacecastError
from facecast.speech import Speech, WordEvent
from facecast.speech.align import phrases, time_map
from facecast.speech.espeak import EspeakBackend
from facecast.speech.words import carried, off_pauses, spread_words

logger = logging.getLogger(__name__)


def aligned_words(speech: Speech, text: str, lang: str) -> tuple[WordEvent, ...]:
    """The words of `text` timed on `speech`'s audio (its phonemes, if any, end them)."""
    audio = speech.audio
    try:
        reference = EspeakBackend().synthesize(text, lang)
    except FacecastError as exc:
        logger.info("words spread evenly: espeak-ng cannot speak this text (%s)", exc)
        return spread_words(text, speech.phonemes, audio.duration)
    xs, ys = time_map(reference.audio, audio)
    spans = [(span.start, span.end) for span in phrases(audio)]
    return off_pauses(carried(reference.words, xs, ys, audio.duration), spans)


def with_words(speech: Speech, text: str, lang: str) -> Speech:
    """`speech` with word timings: its own where the backend gave them, else aligned."""
    if speech.words or not text.strip():
        return speech
    return replace(speech, words=aligned_words(speech, text, lang))


def transcript_words(track: AudioTrack, transcript: str, lang: str) -> tuple[WordEvent, ...]:
    """A recording's words from its transcript, aligned to the recording."""
    return aligned_words(Speech(audio=track), transcript, lang)

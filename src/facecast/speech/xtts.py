"""Coqui XTTS-v2 through `coqui-tts` (the optional extra `[xtts]`): natural voices in 17
languages, cloned from a 3-30 s sample.

Weights come only from FACECAST_XTTS_MODEL_DIR (config.json, model.pth, vocab.json; the
operator brings them: Coqui Public Model Licence, non-commercial). Nothing is downloaded and
nothing is written there: checkpoints in the original format (the config pickled as an
object), which coqui-tts rewrites in place on load, are read without rewriting, so a read-only
directory works. Conditioning latents are cached per sample hash under the voice cache
directory (FACECAST_VOICE_CACHE_DIR), never under the model directory. Synthesis streams
(`stream`), sentence piece by piece, on the GPU when torch sees one. XTTS gives no phoneme
timings: the mouth follows the signal, as for uploaded recordings.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pickle
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from facecast.audio import AudioTrack
from facecast.errors import (
    BackendUnavailableError,
    FacecastError,
    InvalidTextError,
    UnsupportedLanguageError,
)
from facecast.registry import Capabilities, Description, MissingError
from facecast.speech import Speech, VoiceInfo
from facecast.speech.cloning import VoiceSample

logger = logging.getLogger(__name__)

MODEL_FILES = ("config.json", "model.pth", "vocab.json")
"""What FACECAST_XTTS_MODEL_DIR must hold."""
PACKAGES = ("TTS", "torch", "torchaudio")
"""Modules the `[xtts]` extra installs."""
LANGUAGES = (
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru",
    "nl", "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi",
)  # fmt: skip
"""The 17 languages of XTTS-v2."""
CLONE_PREFIX = "clone-"
"""Voice names of cloned voices: the prefix and the sample's hash."""
HASH_CHARS = 32
DEFAULT_CHAR_LIMIT = 200
"""Characters per inference call where coqui-tts names no limit for the language."""
STREAM_CHUNK_TOKENS = 20
"""GPT tokens per streamed audio chunk (about 1 s of speech)."""
_SENTENCE = re.compile(r"(?<=[.!?;。！？；…])\s+|(?<=[。！？；])")


def xtts_installed(model_dir: Path | None) -> bool:
    """True when coqui-tts and torch are installed and `model_dir` holds the XTTS files.

    Looks only at files and module specs: nothing heavy is imported (the API calls this).
    """
    if model_dir is None:
        return False
    if any(importlib.util.find_spec(name) is None for name in PACKAGES):
        return False
    return all((Path(model_dir) / name).is_file() for name in MODEL_FILES)


def _import_torchaudio() -> ModuleType:
    """torchaudio, also where its compiled extension does not match torch.

    PyPI's torchaudio wheels link CUDA torch; with the CPU torch its extension fails to load.
    XTTS uses only torchaudio's pure-torch parts (resampling, mel spectrograms), so the
    extension is skipped when it cannot load.
    """
    try:
        import torchaudio

        return torchaudio
    except OSError as exc:
        logger.info("torchaudio's compiled extension does not load (%s); using it without.", exc)
        utils = sys.modules.get("torchaudio._extension.utils")
        if utils is None:
            raise
        utils._load_lib = lambda _lib: False  # type: ignore[attr-defined]
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            if name != "torchaudio._extension.utils" and not name.startswith(
                "torchaudio._internal"
            ):
                sys.modules.pop(name, None)
        import torchaudio

        return torchaudio


@dataclass
class _Loaded:
    """What `load()` builds once per process."""

    torch: Any
    model: Any
    device: str
    sample_rate: int
    fingerprint: str


def _model_fingerprint(model_dir: Path) -> str:
    """Names the weights (cached latents belong to them) without hashing gigabytes."""
    digest = hashlib.sha256((model_dir / "config.json").read_bytes())
    for name in ("model.pth", "vocab.json"):
        stat = (model_dir / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def split_for_xtts(text: str, limit: int) -> list[str]:
    """Sentences of at most `limit` characters (XTTS's GPT takes ~400 tokens per call)."""
    pieces: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE.split(text)):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


SAMPLE_VOICE = "clone"
"""The catalogue's name for "the voice of the sample sent along" (voice_clone_wav)."""


SECONDS_PER_SECOND_CPU = 3.0
"""CPU seconds per second of speech on a 2-core CPU (for job cost estimates)."""
LICENCE = "MPL-2.0 code (coqui-tts); weights under the Coqui Public Model Licence (non-commercial)"


class XttsBackend:
    """XTTS-v2: natural speech in a voice cloned from a sample; no phoneme timings."""

    name = "xtts"
    capabilities = Capabilities(
        cloning=True, natural=True, seconds_per_second_cpu=SECONDS_PER_SECOND_CPU
    )

    def __init__(self, model_dir: Path, cache_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._loaded: _Loaded | None = None
        self._voices: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Import coqui-tts and load the weights (CPU or GPU); reads, never writes, the model
        directory."""
        if self._loaded is not None:
            return
        missing = [n for n in MODEL_FILES if not (self.model_dir / n).is_file()]
        if missing:
            raise BackendUnavailableError(
                f"XTTS weights are incomplete in {self.model_dir}: {', '.join(missing)} missing."
            )
        try:
            import torch

            _import_torchaudio()
            from TTS.tts.configs.xtts_config import XttsConfig
            from TTS.tts.models import xtts as xtts_module
        except ImportError as exc:
            raise BackendUnavailableError(
                f"XTTS needs the [xtts] extra (pip install 'facecast[xtts]'): {exc}"
            ) from exc
        config = XttsConfig()
        config.load_json(str(self.model_dir / "config.json"))
        model = xtts_module.Xtts(config)
        # coqui-tts converts an old-format checkpoint by saving over model.pth; read it here.
        model._load_checkpoint = lambda path: _read_checkpoint(torch, xtts_module, Path(path))
        model.load_checkpoint(config, checkpoint_dir=str(self.model_dir), eval=True)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        rate = int(getattr(config.model_args, "output_sample_rate", 24_000))
        self._loaded = _Loaded(torch, model, device, rate, _model_fingerprint(self.model_dir))
        logger.info("XTTS loaded from %s on %s.", self.model_dir, device)

    def _engine(self) -> _Loaded:
        if self._loaded is None:
            self.load()
        assert self._loaded is not None
        return self._loaded

    def languages(self) -> tuple[str, ...]:
        """The 17 XTTS-v2 language codes."""
        return LANGUAGES

    def voices(self) -> tuple[VoiceInfo, ...]:
        """One catalogue entry: the voice of the sample sent with the request."""
        return (
            VoiceInfo(
                self.name,
                SAMPLE_VOICE,
                LANGUAGES,
                natural=True,
                cloning=True,
                # The sample's own voice: no gender claimed for it (NEUTRAL), no timings.
                licence=LICENCE,
                commercial_use=False,
            ),
        )

    # ------------------------------------------------------------------ voices

    def _cache_file(self, engine: _Loaded, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "xtts" / engine.fingerprint / f"{key}.pt"

    def clone(self, sample: VoiceSample) -> str:
        """Conditioning latents for `sample`, computed once per sample hash and cached on disk;
        the voice name to synthesise with."""
        engine = self._engine()
        key = sample.sha256[:HASH_CHARS]
        voice = CLONE_PREFIX + key
        with self._lock:
            if voice in self._voices:
                return voice
            cached = self._cache_file(engine, key)
            if cached is not None and cached.is_file():
                stored = engine.torch.load(cached, map_location="cpu", weights_only=True)
                self._voices[voice] = (stored["gpt"], stored["speaker"])
                logger.info("cloned voice %s read from the cache", key)
                return voice
        audio = engine.torch.from_numpy(np.ascontiguousarray(sample.audio.samples))[None]
        audio = audio.to(engine.device)
        rate = sample.audio.sample_rate
        gpt = engine.model.get_gpt_cond_latents(audio, rate).cpu()
        speaker = engine.model.get_speaker_embedding(audio, rate).cpu()
        with self._lock:
            self._voices[voice] = (gpt, speaker)
        if cached is not None:
            _save_atomically(engine.torch, {"gpt": gpt, "speaker": speaker}, cached)
        logger.info("cloned voice %s computed", key)
        return voice

    def speakers(self) -> tuple[str, ...]:
        """Named studio voices of the weights (`speakers_xtts.pth` of the release), if any."""
        manager = getattr(self._engine().model, "speaker_manager", None)
        return tuple(getattr(manager, "name_to_id", {}) or {}) if manager is not None else ()

    def cloned_voices(self) -> tuple[str, ...]:
        """Voices cloned in this process (memory cache)."""
        with self._lock:
            return tuple(self._voices)

    def _latents(self, engine: _Loaded, voice: str | None) -> tuple[Any, Any]:
        with self._lock:
            if voice is not None and voice in self._voices:
                return self._voices[voice]
        if voice is not None and voice.startswith(CLONE_PREFIX):
            cached = self._cache_file(engine, voice[len(CLONE_PREFIX) :])
            if cached is not None and cached.is_file():
                stored = engine.torch.load(cached, map_location="cpu", weights_only=True)
                return stored["gpt"], stored["speaker"]
        speakers = getattr(engine.model, "speaker_manager", None)
        names = list(getattr(speakers, "name_to_id", {}) or {}) if speakers is not None else []
        if voice is None and names:
            voice = names[0]  # the release's speaker file: its first studio voice by default
        if voice is not None and voice in names and speakers is not None:
            latents = speakers.speakers[voice]
            return latents["gpt_cond_latent"], latents["speaker_embedding"]
        if voice is None or voice == SAMPLE_VOICE:
            raise FacecastError(
                "XTTS speaks in a cloned voice: send a voice sample (voice_clone_wav)"
                + (f" or name a speaker ({', '.join(names[:8])}, ...)." if names else ".")
            )
        known = f" Named voices: {', '.join(names[:8])}." if names else ""
        raise FacecastError(f"Unknown XTTS voice {voice!r}; send a voice sample to clone.{known}")

    # ------------------------------------------------------------------ speaking

    def stream(self, text: str, lang: str, voice: str | None = None) -> Iterator[AudioTrack]:
        """Speech for `text` as it is generated, about a second at a time."""
        code = lang.strip().lower().replace("_", "-")
        code = "zh-cn" if code.startswith("zh") else code.split("-")[0]
        if code not in LANGUAGES:
            raise UnsupportedLanguageError(
                f"XTTS does not speak {lang!r}. It speaks: {', '.join(LANGUAGES)}."
            )
        if not text.strip():
            raise InvalidTextError("Text is empty.")
        engine = self._engine()
        gpt, speaker = self._latents(engine, voice)
        limit = engine.model.tokenizer.char_limits.get(code.split("-")[0], DEFAULT_CHAR_LIMIT)
        for piece in split_for_xtts(text, limit):
            chunks = engine.model.inference_stream(
                piece, code, gpt, speaker, stream_chunk_size=STREAM_CHUNK_TOKENS
            )
            for chunk in chunks:
                samples = chunk.detach().float().cpu().numpy().reshape(-1)
                yield AudioTrack(samples=samples.astype(np.float32), sample_rate=engine.sample_rate)

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        """Speak `text` in `lang` with `voice` (a cloned voice name from `clone`)."""
        parts = [track.samples for track in self.stream(text, lang, voice)]
        if not parts or not sum(part.size for part in parts):
            raise InvalidTextError("Text contains nothing that can be spoken.")
        samples = np.clip(np.concatenate(parts), -1.0, 1.0)
        return Speech(audio=AudioTrack(samples=samples, sample_rate=self._engine().sample_rate))


def _read_checkpoint(torch: Any, xtts_module: Any, path: Path) -> dict[str, Any]:
    """The state dict of a checkpoint in either format, without writing anything."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # The original release pickles its XttsConfig; allow exactly those classes.
        with xtts_module._legacy_safe_globals():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state: dict[str, Any] = checkpoint["model"]
    return state


def _save_atomically(torch: Any, value: dict[str, Any], target: Path) -> None:
    """Write next to `target`, then rename: readers never see half a file. A cache that
    cannot be written only costs the next process the computation."""
    scratch = target.with_name(f"{target.stem}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with scratch.open("wb") as handle:
            torch.save(value, handle)
        os.replace(scratch, target)
    except (OSError, RuntimeError) as exc:
        logger.warning("could not cache cloned voice latents in %s: %s", target.parent, exc)
    finally:
        scratch.unlink(missing_ok=True)


def _make(_models_dir: Path) -> XttsBackend:
    """XTTS when coqui-tts and torch are installed and FACECAST_XTTS_MODEL_DIR holds its files."""
    from facecast.config import get_settings

    settings = get_settings()
    if not xtts_installed(settings.xtts_model_dir):
        raise MissingError(
            ["coqui-tts, torch and the XTTS-v2 files in FACECAST_XTTS_MODEL_DIR"],
            "pip install 'facecast[xtts]' and set FACECAST_XTTS_MODEL_DIR",
        )
    assert settings.xtts_model_dir is not None
    cache = settings.voice_cache_dir or settings.data_dir / "voice-cache"
    return XttsBackend(settings.xtts_model_dir, cache)


DESCRIPTION: Description[XttsBackend] = Description(
    XttsBackend.name,
    "speech",
    _make,
    device="gpu",
    licence=LICENCE,
    commercial_use=False,
    preference=3,
)
"""Cloned voices; never a language's default (its weights are non-commercial)."""

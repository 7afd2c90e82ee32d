"""Speech backends against the real espeak-ng library (no mocks)."""

from __future__ import annotations

import itertools
import multiprocessing
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from facecast.errors import (
    BackendUnavailableError,
    FacecastError,
    InvalidTextError,
    UnsupportedLanguageError,
)
from facecast.registry import Capabilities, Registry
from facecast.speech import PhonemeEvent, Speech, VoiceInfo, registry
from facecast.speech.espeak import PAUSE, EspeakBackend, phoneme_name, phoneme_timeline
from facecast.speech.espeak_data import MAX_DATA_PATH_BYTES, prepared_data_dir

ESPEAK_RATE = 22_050
GERMAN = "Guten Tag, wie geht es Ihnen heute?"
ENGLISH = "Good morning, how are you today?"
SENTENCES = "Hallo! Wie geht's? Gut, danke. Und dir?"
MIN_RMS = 0.02
"""espeak speech sits near 0.09 RMS; silence would be 0."""
QUIET_RATIO = 0.1
"""Inside a long pause the audio is at most this loud relative to the whole clip."""
LONG_PAUSE_S = 0.1
FORK_TIMEOUT_S = 60
THREADS = 4
REPEAT_TOLERANCE_S = 0.02
PLAUSIBLE_SECONDS = (1.0, 4.0)
"""A short sentence at espeak's default 175 words per minute."""


@pytest.fixture(scope="module")
def espeak() -> EspeakBackend:
    backend = EspeakBackend()
    backend.load()
    return backend


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _spoken(speech: Speech) -> list[str]:
    return [event.phoneme for event in speech.phonemes if event.phoneme != PAUSE]


def _assert_timeline_covers(speech: Speech) -> None:
    events = speech.phonemes
    assert events, "no phoneme events"
    assert events[0].start == 0.0
    assert events[-1].end == pytest.approx(speech.audio.duration)
    for event in events:
        assert event.end > event.start
    for before, after in itertools.pairwise(events):
        assert after.start == before.end


def _assert_plausible_audio(speech: Speech) -> None:
    audio = speech.audio
    assert audio.sample_rate == ESPEAK_RATE
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert float(np.abs(audio.samples).max()) <= 1.0
    assert _rms(audio.samples) > MIN_RMS
    low, high = PLAUSIBLE_SECONDS
    assert low < audio.duration < high


@pytest.mark.parametrize(("text", "lang"), [(GERMAN, "de"), (ENGLISH, "en")])
def test_synthesis_gives_audio_and_covering_phonemes(
    espeak: EspeakBackend, text: str, lang: str
) -> None:
    speech = espeak.synthesize(text, lang)
    _assert_plausible_audio(speech)
    _assert_timeline_covers(speech)
    assert len(_spoken(speech)) > len(text.split())


def test_pauses_line_up_with_quiet_audio(espeak: EspeakBackend) -> None:
    speech = espeak.synthesize(SENTENCES, "de")
    audio = speech.audio
    overall = _rms(audio.samples)
    pauses = [e for e in speech.phonemes if e.phoneme == PAUSE and e.end - e.start > LONG_PAUSE_S]
    assert len(pauses) >= len(SENTENCES.split("?")) - 1
    for pause in pauses:
        inside = audio.samples[int(pause.start * ESPEAK_RATE) : int(pause.end * ESPEAK_RATE)]
        assert _rms(inside) < QUIET_RATIO * overall
    _assert_timeline_covers(speech)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_mama_is_m_a_m_a(espeak: EspeakBackend, lang: str) -> None:
    spoken = _spoken(espeak.synthesize("Mama", lang))
    assert len(spoken) == len("mama")
    assert spoken[0] == spoken[2] == "m"
    assert all(name.lower().startswith("a") for name in spoken[1::2])


def test_umlauts_are_read_as_utf8(espeak: EspeakBackend) -> None:
    spoken = _spoken(espeak.synthesize("Grüße aus Köln", "de"))
    assert "y:" in spoken  # ü
    assert "W" in spoken  # ö


def test_empty_text_is_rejected(espeak: EspeakBackend) -> None:
    for text in ("", "   \n\t "):
        with pytest.raises(InvalidTextError, match="Text is empty"):
            espeak.synthesize(text, "de")
    with pytest.raises(InvalidTextError):
        espeak.synthesize("...", "de")


def test_unknown_language_is_named(espeak: EspeakBackend) -> None:
    with pytest.raises(UnsupportedLanguageError, match="'xx'") as caught:
        espeak.synthesize("Hallo", "xx")
    assert caught.value.code == "unsupported_language"
    assert "de" in caught.value.message and "en" in caught.value.message


def test_languages_and_their_spellings(espeak: EspeakBackend) -> None:
    languages = espeak.languages()
    assert {"de", "en", "en-us"} <= set(languages)
    assert list(languages) == sorted(languages)
    reference = _spoken(espeak.synthesize("Hallo", "de"))
    assert _spoken(espeak.synthesize("Hallo", "de_DE")) == reference
    assert _spoken(espeak.synthesize("Hello", "EN-us"))


def test_voice_variants(espeak: EspeakBackend) -> None:
    assert {"f3", "m1", "klatt"} <= set(espeak.variants())
    plain = espeak.synthesize("Hallo zusammen", "de")
    female = espeak.synthesize("Hallo zusammen", "de", voice="f3")
    _assert_timeline_covers(female)
    assert len(plain.audio.samples) != len(female.audio.samples)
    for bad in ("F3", "f3+m1", "../x", "a" * 33, ""):
        with pytest.raises(FacecastError, match="Voice names"):
            espeak.synthesize("Hallo", "de", voice=bad)
    with pytest.raises(FacecastError, match="Unknown espeak voice"):
        espeak.synthesize("Hallo", "de", voice="nope")


def _fingerprint(speech: Speech) -> tuple[int, list[str]]:
    return len(speech.audio.samples), [e.phoneme for e in speech.phonemes]


def _same_speech(a: tuple[int, list[str]], b: tuple[int, list[str]]) -> bool:
    """Same phonemes, same length give or take a pitch period: espeak's wave generator carries
    state from one utterance into the next, so repeats differ by up to ~10 ms."""
    return abs(a[0] - b[0]) <= REPEAT_TOLERANCE_S * ESPEAK_RATE and a[1] == b[1]


def test_two_synths_in_a_row(espeak: EspeakBackend) -> None:
    first = _fingerprint(espeak.synthesize(GERMAN, "de"))
    second = _fingerprint(espeak.synthesize(GERMAN, "de"))
    assert _same_speech(first, second)


def test_concurrent_threads(espeak: EspeakBackend) -> None:
    texts = [(GERMAN, "de"), (ENGLISH, "en")] * THREADS
    reference = {lang: _fingerprint(espeak.synthesize(text, lang)) for text, lang in texts}
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda job: (job[1], espeak.synthesize(*job)), texts))
    for lang, speech in results:
        assert _same_speech(_fingerprint(speech), reference[lang])


def _synth_in_child(text: str, lang: str) -> tuple[int, list[str]]:
    return _fingerprint(EspeakBackend().synthesize(text, lang))


def test_synth_in_forked_child_after_parent(espeak: EspeakBackend) -> None:
    parent = _fingerprint(espeak.synthesize(GERMAN, "de"))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_synth_in_child, (GERMAN, "de")).get(timeout=FORK_TIMEOUT_S)
    assert _same_speech(child, parent)


def test_fork_while_another_thread_synthesises(espeak: EspeakBackend) -> None:
    parent = _fingerprint(espeak.synthesize(ENGLISH, "en"))
    stop = threading.Event()

    def keep_speaking() -> None:
        while not stop.is_set():
            espeak.synthesize(GERMAN, "de")

    worker = threading.Thread(target=keep_speaking)
    worker.start()
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            jobs = [pool.apply_async(_synth_in_child, (ENGLISH, "en")) for _ in range(THREADS)]
            children = [job.get(timeout=FORK_TIMEOUT_S) for job in jobs]
    finally:
        stop.set()
        worker.join()
    assert all(_same_speech(child, parent) for child in children)


# --- phoneme timeline (pure) ---------------------------------------------------------------


def _names(events: Sequence[PhonemeEvent]) -> list[tuple[str, float, float]]:
    return [(e.phoneme, e.start, e.end) for e in events]


def test_phoneme_name_drops_stress_and_unifies_pauses() -> None:
    assert phoneme_name("'A") == "A"
    assert phoneme_name(",aU") == "aU"
    assert phoneme_name("a#") == "a#"
    assert [phoneme_name(p) for p in ("_", "_:", "_!", "_|", "")] == [PAUSE] * 5


def test_timeline_fills_gaps_drops_empty_and_merges_pauses() -> None:
    marks = [(0.1, "m"), (0.2, "'a"), (0.3, "_:"), (0.3, "_|"), (0.35, "_"), (0.5, "n"), (0.6, "_")]
    assert _names(phoneme_timeline(marks, 0.6)) == [
        (PAUSE, 0.0, 0.1),
        ("m", 0.1, 0.2),
        ("a", 0.2, 0.3),
        (PAUSE, 0.3, 0.5),
        ("n", 0.5, 0.6),
    ]


def test_timeline_clamps_to_audio_and_handles_no_marks() -> None:
    assert _names(phoneme_timeline([(0.0, "m"), (2.0, "a")], 1.0)) == [("m", 0.0, 1.0)]
    assert _names(phoneme_timeline([], 0.5)) == [(PAUSE, 0.0, 0.5)]
    assert phoneme_timeline([], 0.0) == ()


# --- data folder ---------------------------------------------------------------------------


def _fake_data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "phontab").write_bytes(b"\0")
    (folder / "voices").mkdir()
    return folder


@pytest.mark.parametrize("parent", ["plain", "x" * MAX_DATA_PATH_BYTES, "Größe"])
def test_data_dir_is_copied_short_with_steady_variants(tmp_path: Path, parent: str) -> None:
    data = _fake_data(tmp_path / parent / "espeak-ng-data")
    variants = data / "voices" / "!v"
    variants.mkdir()
    (variants / "f3").write_text("name f3\nflutter 20\n")
    with tempfile.TemporaryDirectory(prefix="fc") as scratch:  # tmp_path itself is too long
        copy = prepared_data_dir(data, Path(scratch))
        assert copy != data
        assert copy.is_relative_to(scratch)
        assert len(str(copy).encode()) <= MAX_DATA_PATH_BYTES and str(copy).isascii()
        assert (copy / "phontab").read_bytes() == b"\0"
        steady = (copy / "facecast-steady" / "f3").read_text()
        assert steady.startswith("name f3")
        assert steady.splitlines()[-2:] == ["flutter 0", "roughness 8"]
        assert (copy / "facecast-steady" / "default").is_file()
        assert not list((copy / "voices").rglob("*steady*"))  # espeak lists voices/ at start
        assert prepared_data_dir(data, Path(scratch)) == copy  # copied once, then reused


def test_data_dir_without_espeak_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError):
        prepared_data_dir(tmp_path)


def test_the_same_text_gives_the_same_timing(espeak: EspeakBackend) -> None:
    """Without flutter and roughness the same text always gives the same speech, whatever
    was spoken before (a clause in between used to flip the samples between two versions)."""
    for voice in (None, "f3"):
        takes = [espeak.synthesize(GERMAN, "de", voice) for _ in range(3)]
        espeak.synthesize("Etwas ganz anderes dazwischen.", "de", voice)
        takes.append(espeak.synthesize(GERMAN, "de", voice))
        for take in takes[1:]:
            assert take.phonemes == takes[0].phonemes
            assert np.array_equal(take.audio.samples, takes[0].audio.samples)


# --- registry ------------------------------------------------------------------------------


class _CountingBackend:
    """A real, tiny backend: a beep, counting how often it was loaded."""

    capabilities = Capabilities()
    name = "beep"

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> None:
        self.loads += 1

    def languages(self) -> tuple[str, ...]:
        return ("xx",)

    def voices(self) -> tuple[VoiceInfo, ...]:
        return ()

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        from facecast.audio import AudioTrack

        return Speech(audio=AudioTrack(np.zeros(ESPEAK_RATE, np.float32), ESPEAK_RATE))


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        registry, "REGISTRY", Registry("speech backend", registry._builtin_backends, kind="speech")
    )


def test_registry_serves_espeak(fresh_registry: None) -> None:
    assert "espeak" in registry.available()
    backend = registry.get_backend("espeak")
    assert backend.name == "espeak"
    assert registry.get_backend("espeak") is backend
    assert backend.synthesize("Hallo", "de").audio.duration > 0


def test_registry_unknown_name(fresh_registry: None) -> None:
    with pytest.raises(BackendUnavailableError, match="'nope'") as caught:
        registry.get_backend("nope")
    assert caught.value.code == "backend_unavailable"
    assert "espeak" in caught.value.message


def test_registry_loads_once_across_threads(fresh_registry: None) -> None:
    beep = _CountingBackend()
    registry.register(beep)
    assert {"beep", "espeak"} <= set(registry.available())
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        got = list(pool.map(lambda _: registry.get_backend("beep"), range(THREADS * 4)))
    assert all(backend is beep for backend in got)
    assert beep.loads == 1


def _loads_in_child() -> int:
    backend = registry.get_backend("beep")
    assert isinstance(backend, _CountingBackend)
    return backend.loads


def test_registry_loads_again_in_forked_child(fresh_registry: None) -> None:
    beep = _CountingBackend()
    registry.register(beep)
    registry.get_backend("beep")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_loads_in_child).get(timeout=FORK_TIMEOUT_S) == 2
    assert beep.loads == 1

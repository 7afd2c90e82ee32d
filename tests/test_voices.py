"""Voices: the catalogue, Pico with espeak's timings mapped onto it, Piper through onnxruntime
(a tiny generated voice always, the joe wheel where installed), choosing a voice through the
API, and lip-sync on rendered frames for every installed backend."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from _measure import Clip, measure_clip
from conftest import LIPSYNC_SIZE, SPEECH_TEXT, grace_photo
from conftest_service import LiveService
from facecast import motion
from facecast.audio import AudioTrack
from facecast.config import get_settings
from facecast.errors import FacecastError, UnsupportedLanguageError
from facecast.options import RenderOptions
from facecast.pipeline import render_talking_head, synthesize
from facecast.registry import Capabilities, Registry
from facecast.speech import PhonemeEvent, Speech, VoiceInfo, registry
from facecast.speech import pico as pico_module
from facecast.speech.espeak import EspeakBackend
from facecast.speech.pico import PicoBackend
from facecast.speech.piper import DURATION_OUTPUT, PiperBackend, find_voices, patched_model

BILABIAL_TEXT = "Mama baut Pappeln am Meer. Oh, das ist aber schön!"
BILABIALS = frozenset({"m", "b", "p"})
HOP_S = 0.01
JOE = "en_US-joe-medium"
joe_installed = any(v.name == JOE for v in find_voices(None))


# --- the catalogue -------------------------------------------------------------------------


def test_fresh_install_defaults_pico_for_german_and_english_espeak_elsewhere() -> None:
    assert registry.default_voice("de").id == "pico:de-DE"
    assert registry.default_voice("en").id == "pico:en-US"
    assert registry.default_voice("en-gb").id == "pico:en-GB"
    assert registry.default_voice("pl").id == "espeak:default"
    with pytest.raises(UnsupportedLanguageError, match="xx"):
        registry.default_voice("xx")


@pytest.mark.skipif(not joe_installed, reason="the [voices] extra is not installed")
def test_noncommercial_voice_is_default_only_when_the_operator_opts_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joe = next(v for v in registry.catalogue() if v.name == JOE)
    assert not joe.commercial_use and "lessac" in joe.licence
    monkeypatch.setenv("FACECAST_NONCOMMERCIAL_VOICES", "true")
    get_settings.cache_clear()
    try:
        assert registry.default_voice("en").id == f"piper:{JOE}"
        assert registry.default_voice("de").id == "pico:de-DE"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("lang", "spec", "expected"),
    [
        ("de", "pico:de-DE", "pico:de-DE"),
        ("de", "de-DE", "pico:de-DE"),
        ("de", "pico", "pico:de-DE"),
        ("fr", "pico", "pico:fr-FR"),
        ("de", "espeak:f3", "espeak:f3"),
        ("de", "F3", "espeak:f3"),
        ("en", "espeak", "espeak:default"),
        ("en", "pico:en-GB", "pico:en-GB"),  # a voice implies its region of the language
        ("en", "en-GB", "pico:en-GB"),
        ("es", "pico:es-ES", "pico:es-ES"),
    ],
)
def test_voice_spellings_resolve(lang: str, spec: str, expected: str) -> None:
    assert registry.resolve_voice(lang, spec).id == expected


@pytest.mark.parametrize(("lang", "spec"), [("de", "nope"), ("pl", "pico"), ("en", "de-DE")])
def test_a_voice_that_does_not_fit_lists_the_valid_ones(lang: str, spec: str) -> None:
    with pytest.raises(FacecastError) as caught:
        registry.resolve_voice(lang, spec)
    assert caught.value.code == "unknown_voice"
    valid = [v for v in registry.catalogue() if registry.speaks(v, lang)]
    message = caught.value.message
    assert valid[0].id in message and f"{len(valid)} in all" in message
    # Speaks of neither HTTP nor a server (the CLI shows it too); natural voices come first.
    assert "GET /" not in message and "server" not in message
    listed = message.split(": ", 1)[1].split(" (")[0].removesuffix(" ...").split(", ")
    natural = {v.id for v in valid if v.natural}
    firsts = listed[: len(natural & set(listed))]
    assert set(firsts) <= natural, listed


def test_a_plain_language_keeps_its_default_region() -> None:
    assert registry.default_voice("en").id == "pico:en-US"
    assert registry.default_voice("en-GB").id == "pico:en-GB"


# --- Pico ----------------------------------------------------------------------------------


BAND_HZ = (1000.0, 4000.0)
"""Lips shut: stops are silent, and nasals (m) keep their energy below 1 kHz."""
CLOSURE_DROP_DB = 10.0
"""A bilabial's span sits at least this far below the loudest moment of its vowel."""


def _level_db(track: AudioTrack) -> np.ndarray:
    """Energy between 1 and 4 kHz per 10 ms, in dB."""
    hop = round(HOP_S * track.sample_rate)
    n = len(track.samples) // hop
    frames = track.samples[: n * hop].reshape(n, hop) * np.hanning(hop)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(hop, 1 / track.sample_rate)
    band = spectrum[:, (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])].sum(axis=1)
    return np.asarray(10 * np.log10(band + 1e-12), dtype=np.float64)


def _span(level: np.ndarray, event: PhonemeEvent) -> np.ndarray:
    first = int(event.start / HOP_S)
    return level[first : max(int(event.end / HOP_S), first + 1)]


def bilabial_dips(speech: Speech) -> float:
    """Share of bilabials whose span in the audio is quieter than the vowel after them.

    A bilabial is a closure (silence or a nasal murmur) before its vowel: with timings that
    fit the audio, its span is clearly quieter than the next vowel's.
    """
    level = _level_db(speech.audio)
    events = list(speech.phonemes)
    hits = total = 0
    for this, after in itertools.pairwise(events):
        if this.phoneme not in BILABIALS or after.phoneme in BILABIALS | {"_"}:
            continue
        total += 1
        closure = level[
            int(this.start / HOP_S) : max(int(this.end / HOP_S), int(this.start / HOP_S) + 1)
        ]
        vowel = level[
            int(after.start / HOP_S) : max(int(after.end / HOP_S), int(after.start / HOP_S) + 1)
        ]
        hits += float(np.median(closure)) < float(np.max(vowel)) - CLOSURE_DROP_DB
    assert total >= 6, [e.phoneme for e in events]
    return hits / total


@pytest.fixture(scope="module")
def pico_speech() -> Speech:
    return registry.get_backend("pico").synthesize(BILABIAL_TEXT, "de")


def test_pico_speaks_at_half_volume_without_clipping(pico_speech: Speech) -> None:
    audio = pico_speech.audio
    assert audio.sample_rate == 16_000 and 2.0 < audio.duration < 8.0
    peak = float(np.abs(audio.samples).max())
    assert 0.2 < peak < 0.95, peak
    assert pico_speech.phonemes[-1].end == pytest.approx(audio.duration)


def test_pico_gives_the_same_audio_for_the_same_text(pico_speech: Speech) -> None:
    """Pico reads engine memory before writing it; its helper process makes that memory fresh
    zeroed pages every call (in-process, one call in eight or more came out different)."""
    backend = registry.get_backend("pico")
    other = backend.synthesize("Ein anderer, längerer Text dazwischen. " * 4, "de")
    again = backend.synthesize(BILABIAL_TEXT, "de")
    assert other.audio.duration > again.audio.duration
    np.testing.assert_array_equal(again.audio.samples, pico_speech.audio.samples)


def test_pico_recovers_from_an_interrupted_request(
    pico_speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's time limit can strike while the answer is in the pipe: the next request must
    get its own audio, not that stale answer."""
    backend = PicoBackend()

    def time_limit(*_: object) -> bytes:
        raise RuntimeError("soft time limit exceeded")

    with monkeypatch.context() as patch:
        patch.setattr(pico_module, "_read", time_limit)
        with pytest.raises(RuntimeError, match="time limit"):
            backend.synthesize("Etwas ganz anderes, und viel länger als der Satz danach.", "de")
    try:
        again = backend.synthesize(BILABIAL_TEXT, "de")
    finally:
        backend.close()
    np.testing.assert_array_equal(again.audio.samples, pico_speech.audio.samples)


def test_pico_timings_fit_its_audio_and_the_unmapped_ones_do_not(pico_speech: Speech) -> None:
    """espeak's events mapped onto Pico put every bilabial on a closure; espeak's own times
    laid over Pico's audio (what the mapping fixes) miss many of them."""
    reference = EspeakBackend().synthesize(BILABIAL_TEXT, "de")
    unmapped = Speech(pico_speech.audio, reference.phonemes)
    mapped_share, unmapped_share = bilabial_dips(pico_speech), bilabial_dips(unmapped)
    assert mapped_share >= 0.85, (mapped_share, unmapped_share)
    assert unmapped_share <= mapped_share - 0.25, (mapped_share, unmapped_share)


# --- Piper: a tiny generated voice ---------------------------------------------------------


def tiny_piper_voice(folder: Path, name: str = "xx_XX-tiny-low") -> Path:
    """A Piper-shaped ONNX voice (inputs input/input_lengths/scales, output `output`, a Ceil
    of predicted durations inside) with random durations and a tone for audio."""
    import onnx
    from onnx import TensorProto, helper

    symbols = ["_", "^", "$", " ", ".", ",", "!", "?", "ˈ", "ˌ", "ː"]
    symbols += list("abdefhijklmnoprstuvwxzæðŋɐɑɔəɛɡɪɹʃʊʌʒθ")
    rng = np.random.default_rng(3)
    log_frames = np.log(rng.uniform(1.5, 9.0, len(symbols))).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["log_frames", "input"], ["logw"], axis=0),
        helper.make_node("Gather", ["scales", "one"], ["length_scale"], axis=0),
        helper.make_node("Exp", ["logw"], ["w"]),
        helper.make_node("Mul", ["w", "length_scale"], ["w_scaled"]),
        helper.make_node("Ceil", ["w_scaled"], ["w_ceil"]),
        helper.make_node("ReduceSum", ["w_ceil"], ["frames"], keepdims=0),
        helper.make_node("Mul", ["frames", "hop"], ["n_samples"]),
        helper.make_node("Range", ["zero", "n_samples", "step"], ["t"]),
        helper.make_node("Mul", ["t", "omega"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["tone"]),
        helper.make_node("Mul", ["tone", "gain"], ["wave"]),
        helper.make_node("Reshape", ["wave", "shape"], ["output"]),
    ]
    inits = [
        helper.make_tensor("log_frames", TensorProto.FLOAT, [len(symbols)], log_frames),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("hop", TensorProto.FLOAT, [], [256.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("step", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("omega", TensorProto.FLOAT, [], [2 * np.pi * 180 / 22050]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [0.3]),
        helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 1, -1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_piper",
        [
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, None]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 1, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    config = {
        "audio": {"sample_rate": 22050},
        "espeak": {"voice": "en-us"},
        "language": {"code": "en_US"},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "num_speakers": 1,
        "phoneme_id_map": {symbol: [i] for i, symbol in enumerate(symbols)},
    }
    path.with_name(path.name + ".json").write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    tiny_piper_voice(folder)
    (folder / "broken.onnx").write_bytes(b"no json beside it")
    return folder


def test_voices_dir_offers_piper_voices(tiny_voices: Path) -> None:
    found = find_voices(tiny_voices, include_wheel=False)
    assert [v.name for v in found] == ["xx_XX-tiny-low"]
    assert found[0].languages == ("en-us", "en")
    import onnx

    patched = onnx.load_from_string(patched_model(found[0].model))
    assert DURATION_OUTPUT in [output.name for output in patched.graph.output]


def test_tiny_piper_voice_timings_come_from_its_duration_tensor(tiny_voices: Path) -> None:
    backend = PiperBackend(find_voices(tiny_voices, include_wheel=False))
    backend.load()
    speech = backend.synthesize("Bob, may I help? Map it.", "en")
    phonemes = speech.phonemes
    assert speech.audio.sample_rate == 22050
    assert phonemes[0].start == 0.0 and phonemes[-1].end == pytest.approx(speech.audio.duration)
    names = [event.phoneme for event in phonemes]
    assert names.count("b") >= 2 and names.count("m") >= 1 and names.count("p") >= 2
    assert "_" in names  # the comma and the sentence ends pause
    # The tone runs exactly as long as the frames the durations add up to (256 samples each):
    spoken = [e for e in phonemes if e.phoneme != "_"]
    assert all(e.end > e.start for e in spoken)
    frames = np.array([(e.end - e.start) * 22050 / 256 for e in spoken])
    assert np.all(frames > 0.9)


def test_a_voice_copied_into_the_voices_dir_is_offered_and_spoken(
    tiny_voices: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACECAST_VOICES_DIR", str(tiny_voices))
    get_settings.cache_clear()
    try:
        fresh = Registry("speech backend", registry._builtin_backends, kind="speech")
        monkeypatch.setattr(registry, "REGISTRY", fresh)
        ids = [voice.id for voice in registry.catalogue()]
        assert "piper:xx_XX-tiny-low" in ids
        tiny = next(v for v in registry.catalogue() if v.name == "xx_XX-tiny-low")
        assert tiny.commercial_use and "operator" in tiny.licence
        # An operator's voice with clear terms becomes the default for its language.
        assert registry.default_voice("en-us").id == "piper:xx_XX-tiny-low"
        speech = synthesize("Hi Bob.", "en", "xx_XX-tiny-low")
        assert speech.audio.sample_rate == 22050 and speech.phonemes
    finally:
        get_settings.cache_clear()


def test_piper_refuses_unknown_voice_names(tiny_voices: Path) -> None:
    backend = PiperBackend(find_voices(tiny_voices, include_wheel=False))
    with pytest.raises(FacecastError, match="xx_XX-tiny-low"):
        backend.synthesize("Hello.", "en", "nope")


@pytest.mark.skipif(not joe_installed, reason="the [voices] extra is not installed")
def test_joe_speaks_english_with_exact_timings() -> None:
    """Piper's durations vary a little run to run (noise_w): most bilabials, not all."""
    text = "Bob may pay me, maybe. Mom bought a big map, and Pam put up a pole."
    speech = synthesize(text, "en", JOE, backend="piper")
    assert speech.audio.sample_rate == 22050
    assert speech.phonemes[-1].end == pytest.approx(speech.audio.duration)
    assert bilabial_dips(speech) >= 0.75


# --- lip-sync for every backend ------------------------------------------------------------


class SignalOnly:
    """A backend that gives audio only (as XTTS does): espeak's audio, no phoneme timings."""

    name = "signal-only"
    capabilities = Capabilities(phoneme_timings=False)

    def __init__(self) -> None:
        self.espeak = EspeakBackend()

    def load(self) -> None:
        self.espeak.load()

    def languages(self) -> tuple[str, ...]:
        return ("de",)

    def voices(self) -> tuple[VoiceInfo, ...]:
        return (VoiceInfo(self.name, "plain", ("de",)),)

    def synthesize(self, text: str, lang: str, voice: str | None = None) -> Speech:
        return Speech(self.espeak.synthesize(text, lang).audio)


BACKEND_CASES = ["espeak", "pico", "signal-only"] + (["piper"] if joe_installed else [])
TEXTS = {"piper": ("en", "Hello. My name is Bob, and I am happy to meet you. Maybe later.")}


@pytest.fixture(scope="module", params=BACKEND_CASES)
def backend_clip(request: pytest.FixtureRequest, clip_dir: Path) -> Iterator[tuple[str, Clip]]:
    name: str = request.param
    lang, text = TEXTS.get(name, ("de", SPEECH_TEXT))
    options = RenderOptions(size=LIPSYNC_SIZE, lang=lang, speech_backend=name)
    out = clip_dir / f"backend-{name}.mp4"
    with pytest.MonkeyPatch.context() as patch:
        if name == "signal-only":  # only while this clip's tests run
            fresh = Registry("speech backend", registry._builtin_backends, kind="speech")
            fresh.register(SignalOnly())
            patch.setattr(registry, "REGISTRY", fresh)
        result = render_talking_head(grace_photo(), out, text=text, options=options)
        yield name, measure_clip(name, result, options.fps)


def test_every_backend_opens_the_mouth_in_speech_and_closes_it_in_pauses(
    backend_clip: tuple[str, Clip],
) -> None:
    name, clip = backend_clip
    gap, sound = clip.faces.gap, clip.sound
    assert clip.faces.found.all()
    assert sound.speech.sum() >= 10 and sound.silence.sum() >= 3, name
    speech, silence = (
        float(np.nanmedian(gap[sound.speech])),
        float(np.nanmedian(gap[sound.silence])),
    )
    assert silence < 0.02, (name, silence)
    assert speech > silence + 0.012, (name, speech, silence)


def test_every_backend_with_timings_closes_the_lips_on_bilabials(
    backend_clip: tuple[str, Clip],
) -> None:
    name, clip = backend_clip
    if not registry.get_backend(name).capabilities.phoneme_timings:
        pytest.skip("no timings: the mouth follows the signal")
    lang, text = TEXTS.get(name, ("de", SPEECH_TEXT))
    speech = synthesize(text, lang, backend=name)
    gap = clip.faces.gap
    closures = [e for e in speech.phonemes if e.phoneme in BILABIALS and e.end - e.start >= 0.04]
    assert closures
    shut = 0
    for event in closures:
        first, last = int(event.start * clip.fps), int(event.end * clip.fps)
        shut += float(np.nanmin(gap[max(first - 1, 0) : last + 2])) < 0.012
    assert shut >= 0.8 * len(closures), (name, shut, len(closures))


def test_signal_only_backend_moves_the_mouth_from_the_sound() -> None:
    speech = SignalOnly().synthesize(SPEECH_TEXT, "de")
    curves = motion.motion_curves(speech.audio, 25, phonemes=speech.phonemes)
    assert float(np.ptp(curves.jaw)) > 0.3


# --- the API -------------------------------------------------------------------------------


def test_voices_and_languages_endpoints(live_service: LiveService) -> None:
    voices = live_service.client.get("/voices")
    assert voices.status_code == 200, voices.text
    by_id = {v["id"]: v for v in voices.json()["voices"]}
    pico = by_id["pico:de-DE"]
    assert pico["natural"] and not pico["cloning"] and "Apache" in pico["licence"]
    assert "de" in pico["default_for"]
    assert not by_id["espeak:default"]["natural"]
    languages = {
        entry["code"]: entry for entry in live_service.client.get("/languages").json()["languages"]
    }
    assert languages["de"]["default_voice"] == "pico:de-DE"
    assert languages["pl"]["default_voice"] == "espeak:default"


def test_bad_voice_or_language_is_refused_at_submit(live_service: LiveService) -> None:
    photo = grace_photo()
    for fields in ({"voice": "nope"}, {"lang": "xx"}, {"lang": "pl", "voice": "pico"}):
        answer = live_service.animate(photo, text="Hallo.", **fields)
        assert answer.status_code == 400, answer.text
        assert (
            "espeak:default" in answer.json()["error"]["message"]
            or "xx" in answer.json()["error"]["message"]
        )
    tts = live_service.client.post("/tts", json={"text": "Hallo.", "voice": "nope"})
    assert tts.status_code == 400 and tts.json()["error"]["code"] == "unknown_voice"
    assert "pico:de-DE" in tts.json()["error"]["message"]


def test_two_voices_never_share_a_result(live_service: LiveService) -> None:
    text = "Zwei Stimmen, zwei Ergebnisse."
    first = live_service.client.post("/tts", json={"text": text, "voice": "pico:de-DE"})
    second = live_service.client.post("/tts", json={"text": text, "voice": "espeak:default"})
    again = live_service.client.post("/tts", json={"text": text, "voice": "de-DE"})
    assert first.status_code == second.status_code == again.status_code == 200, second.text
    assert first.json()["audio_id"] != second.json()["audio_id"]
    assert again.json()["reused"] and again.json()["audio_id"] == first.json()["audio_id"]


# --- the CLI -------------------------------------------------------------------------------


def test_cli_lists_voices_and_refuses_a_bad_one_before_rendering(tmp_path: Path) -> None:
    from test_cli import facecast

    listed = facecast("voices", "--lang", "de", cwd=tmp_path)
    assert listed.code == 0, listed.stderr
    assert "default for de: pico:de-DE" in listed.stdout and "espeak:default" in listed.stdout
    helped = facecast("tts", "--help", cwd=tmp_path)
    squeezed = "".join(helped.stdout.split())  # click wraps anywhere, even inside "de-DE"
    assert "PicoforGerman(pico:de-DE)andEnglish(pico:en-US)" in squeezed, helped.stdout
    out = tmp_path / "never.mp4"
    bad = facecast(
        "render", "--image", grace_photo(), "--text", "Hallo", "--voice", "nope", "-o", out,
        cwd=tmp_path,
    )  # fmt: skip
    assert bad.code == 2 and bad.stderr.startswith("error: Voice 'nope'"), bad.stderr
    assert "pico:de-DE" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not out.exists()
    spoken = facecast(
        "tts", "--text", "Hello.", "--lang", "en", "--voice", "espeak", "-o", tmp_path / "a.wav",
        cwd=tmp_path,
    )  # fmt: skip
    assert spoken.code == 0 and "with espeak:default" in spoken.stdout, spoken.stderr

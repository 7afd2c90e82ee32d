"""The spoken-length cap, tested as the attack: long texts in every script are refused before
synthesis, and a text that fools the estimate still stops at the cap."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facecast import pipeline
from facecast.config import get_settings
from facecast.errors import SpeechTooLongError
from facecast.speech.espeak import EspeakBackend
from facecast.speech.limits import (
    CHUNK_SECONDS,
    chunks,
    estimate_seconds,
    synthesize_capped,
)

CJK_BOMB = "会议在下午开始我们讨论了很多问题" * 313  # 5008 characters, ~22 min from espeak
KANJI = "今日は天気が良いので公園に行きます"
"""espeak reads Japanese kanji letter by letter (about 0.6 s each), far slower than speech:
a real text that slips past the estimate."""


@pytest.fixture
def audio_cap(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """FACECAST_MAX_AUDIO_SECONDS=8 for one test."""
    monkeypatch.setenv("FACECAST_MAX_AUDIO_SECONDS", "8")
    get_settings.cache_clear()
    yield 8.0
    monkeypatch.delenv("FACECAST_MAX_AUDIO_SECONDS")
    get_settings.cache_clear()


def test_five_thousand_cjk_characters_are_refused_before_synthesis() -> None:
    assert len(CJK_BOMB) >= 5000
    assert len(CJK_BOMB) <= get_settings().max_text_chars + 10
    text = CJK_BOMB[: get_settings().max_text_chars]
    with pytest.raises(SpeechTooLongError) as caught:
        pipeline.synthesize(text, "cmn")
    assert caught.value.code == "speech_too_long"
    assert "limit" in caught.value.message


@pytest.mark.parametrize(
    ("lang", "unit"),
    [
        ("cmn", "天"),  # Han: a syllable each
        ("ko", "안녕하세요"),  # Hangul syllables
        ("fr", "1234567890 "),  # digits the normaliser leaves alone are read as numbers
    ],
)
def test_bombs_in_other_scripts_are_refused(lang: str, unit: str) -> None:
    limit = get_settings().max_text_chars
    text = (unit * limit)[:limit]
    assert estimate_seconds(text) > get_settings().max_audio_seconds
    with pytest.raises(SpeechTooLongError):
        pipeline.synthesize(text, lang)


SCRIPT_SAMPLES = [
    ("de", "Die Bundesregierung hat heute neue Regeln für den Bahnverkehr beschlossen."),
    ("en", "The government announced new rules for rail travel on Tuesday afternoon."),
    ("cmn", "今天天气很好我们一起去公园散步吧然后吃饭看电影"),
    ("ja", "きょうはいいてんきですね。こうえんにいきましょう。"),
    ("ko", "오늘은 날씨가 좋아서 공원에 갑니다"),
    ("th", "วันนี้อากาศดีมากเราไปเดินเล่นที่สวนสาธารณะกัน"),
    ("ar", "الطقس جميل اليوم لذلك سنذهب إلى الحديقة"),
    ("hi", "आज मौसम बहुत अच्छा है इसलिए हम पार्क जाएंगे"),
    ("ru", "Сегодня хорошая погода поэтому мы пойдём в парк"),
    ("he", "היום מזג האוויר יפה ולכן נלך לפארק"),
    ("fr", "Appelez le 0612345678 ou le 0798765432."),
]


@pytest.mark.parametrize(("lang", "text"), SCRIPT_SAMPLES)
def test_estimate_follows_speech_in_every_script(lang: str, text: str) -> None:
    """At most what espeak takes to say the text (honest texts are not refused) and at least
    a quarter of it; counting characters alike would miss Chinese by a factor of five."""
    spoken = EspeakBackend().synthesize(text, lang).audio.duration
    assert spoken / 4 <= estimate_seconds(text) <= spoken * 1.05


def test_the_longest_accepted_latin_text_is_inside_the_cap() -> None:
    longest = ("Guten Tag, wie geht es Ihnen heute? " * 200)[: get_settings().max_text_chars]
    assert estimate_seconds(longest) < get_settings().max_audio_seconds


def test_a_text_that_slips_past_the_estimate_stops_at_the_cap(audio_cap: float) -> None:
    text = KANJI * 2  # estimated ~6 s, spoken by espeak in ~20 s
    assert estimate_seconds(text) < audio_cap
    speech = pipeline.synthesize(text, "ja")
    assert speech.audio.duration <= audio_cap
    assert speech.audio.duration >= audio_cap - 0.05  # it did speak up to the cap
    assert speech.phonemes[-1].end <= speech.audio.duration
    assert all(event.start < speech.audio.duration for event in speech.phonemes)


def test_capped_synthesis_stops_calling_the_backend(audio_cap: float) -> None:
    """Past the cap no further chunk is synthesised: the work is bounded too, not just the
    output. The chunks of a long text are counted on a real backend."""
    calls: list[str] = []

    class Counting(EspeakBackend):
        def synthesize(self, text: str, lang: str, voice: str | None = None):
            calls.append(text)
            return super().synthesize(text, lang, voice)

    sentence = "Dies ist ein Satz, der ungefähr drei Sekunden dauert. "
    text = sentence * 200  # ~10 minutes of speech in ~30 chunks
    speech = synthesize_capped(Counting(), text, "de", None, audio_cap)
    assert speech.audio.duration <= audio_cap
    assert len(calls) == 1
    assert len(list(chunks(text))) > 20


def test_chunks_stay_within_the_budget_and_keep_every_word() -> None:
    text = "Erster Satz. " * 40 + "ohne punkt " * 300 + CJK_BOMB[:400]
    pieces = list(chunks(text))
    assert all(estimate_seconds(piece) <= CHUNK_SECONDS + 1e-6 for piece in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_normalised_text_keeps_phoneme_timings() -> None:
    speech = pipeline.synthesize("Am 3.12.2026 um 14:30 Uhr kostet es 19,99 €.", "de")
    names = [event.phoneme for event in speech.phonemes]
    assert len([n for n in names if n != "_"]) > 40  # all the words, spelled out
    assert speech.phonemes[-1].end == pytest.approx(speech.audio.duration, abs=1e-6)

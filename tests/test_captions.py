"""Captions: word timings from the speech backends, cues, WebVTT/SRT read back by independent
parsers, burned-in captions readable on dark and bright photos, the CLI's caption files."""

from __future__ import annotations

import html
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt
from PIL import Image

from conftest import grace_photo
from facecast.audio import save_wav
from facecast.burnin import CaptionBurner, font_path
from facecast.captions import MAX_CHARS, cues, to_srt, to_webvtt
from facecast.pipeline import RenderOptions, render_talking_head, synthesize
from facecast.speech import Speech, WordEvent, registry
from facecast.speech.transcript import with_words
from facecast.speech.voicing import Prosody
from facecast.speech.words import timed_words

TEXT_DE = (
    "Guten Tag, Herr Müller. Heute sprechen wir über die neuen Öffnungszeiten unseres Büros "
    "in der Hauptstraße, die ab Montag gelten. Bitte beachten Sie die Hinweise!"
)
TEXT_EN = "Hello there. This is a short test of captions [pause 400ms] with a pause in it."
TOLERANCE_S = 0.1
"""Cue times may differ from the word timings by at most this (the issue's bound)."""
LUMA = np.array([0.2126, 0.7152, 0.0722])
MIN_CONTRAST = 4.5
"""WCAG AA for normal text: text against what is right behind it."""


def _words(text: str) -> list[str]:
    return text.split()


def _seconds(stamp: str) -> float:
    """webvtt-py's `HH:MM:SS.mmm` (its *_in_seconds properties drop the milliseconds)."""
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _check_cues_follow_words(captions_text: str, words: tuple[WordEvent, ...], kind: str) -> None:
    """Each parsed cue starts at its first word and ends at its last, within TOLERANCE_S,
    and together the cues hold every word in order."""
    if kind == "vtt":
        parsed = [
            (_seconds(c.start), _seconds(c.end), c.text)
            for c in webvtt.from_string(captions_text).captions
        ]
    else:
        parsed = [
            (s.start.total_seconds(), s.end.total_seconds(), s.content)
            for s in srt.parse(captions_text)
        ]
    assert parsed
    remaining = list(words)
    for start, end, text in parsed:
        said = _words(text)
        group: list[WordEvent] = []
        while len(" ".join(w.word for w in group).split()) < len(said):
            group.append(remaining.pop(0))
        assert [w for g in group for w in g.word.split()] == said
        assert abs(start - group[0].start) <= TOLERANCE_S
        assert abs(end - group[-1].end) <= TOLERANCE_S
        assert all(len(line) <= MAX_CHARS for line in text.splitlines())
    assert not remaining


@pytest.mark.parametrize(
    ("backend", "voice", "lang", "text"),
    [
        ("espeak", None, "de", TEXT_DE),
        ("pico", None, "de", TEXT_DE),
        ("pico", "en-US-male", "en", TEXT_EN),
        pytest.param(
            "piper",
            "en_US-joe-medium",
            "en",
            TEXT_EN,
            marks=pytest.mark.skipif(
                not any(v.id == "piper:en_US-joe-medium" for v in registry.catalogue()),
                reason="the [voices] extra is not installed",
            ),
        ),
    ],
)
def test_every_word_is_timed_in_order(
    backend: str, voice: str | None, lang: str, text: str
) -> None:
    speech = synthesize(text, lang, voice, backend)
    words = speech.words
    spoken = [w for seg in text.split("[pause 400ms]") for w in seg.split()]
    assert [w.word for w in words] == spoken
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.start <= w.end <= speech.audio.duration for w in words)
    # Words sit on sound: most of each word's span is louder than the clip's quiet parts.
    samples, rate = speech.audio.samples, speech.audio.sample_rate
    level = np.abs(samples)
    floor = np.percentile(level, 30)
    loud = [level[int(w.start * rate) : int(w.end * rate) + 1].max() > 4 * floor for w in words]
    assert sum(loud) >= 0.9 * len(words)


def test_rate_scales_the_word_timings() -> None:
    plain = synthesize(TEXT_EN, "en", "en-US", "pico")
    fast = synthesize(TEXT_EN, "en", "en-US", "pico", prosody=Prosody(rate=1.5))
    assert [w.word for w in fast.words] == [w.word for w in plain.words]
    for slow, quick in zip(plain.words, fast.words, strict=True):
        assert quick.start == pytest.approx(slow.start / 1.5, abs=0.02)


def test_alignment_times_the_words_of_a_backend_that_gives_none() -> None:
    """Piper's and XTTS's path (and a recording's with its transcript): espeak's words aligned
    onto audio that came without them land within 100 ms of where they are."""
    spoken = "Guten Tag, Herr Müller. Heute sprechen wir über die neuen Öffnungszeiten."
    truth = synthesize(spoken, "de", None, "espeak")
    bare = Speech(audio=truth.audio, phonemes=truth.phonemes)
    aligned = with_words(bare, spoken, "de").words
    assert [w.word for w in aligned] == [w.word for w in truth.words]
    errors = [abs(a.start - t.start) for a, t in zip(aligned, truth.words, strict=True)]
    assert max(errors) <= TOLERANCE_S


def test_words_without_a_start_join_their_neighbour() -> None:
    words = timed_words("– Hallo – Welt", [(0.5, 2), (1.0, 10)], (), 2.0)
    assert [(w.word, w.start, w.end) for w in words] == [
        ("– Hallo –", 0.5, 1.0),
        ("Welt", 1.0, 2.0),
    ]


@pytest.mark.parametrize("kind", ["vtt", "srt"])
def test_caption_files_parse_back_and_follow_the_words(kind: str) -> None:
    speech = synthesize(TEXT_DE, "de")
    made = cues(speech.words)
    text = to_webvtt(made) if kind == "vtt" else to_srt(made)
    _check_cues_follow_words(text, speech.words, kind)
    if kind == "vtt":
        assert text.startswith("WEBVTT\n\n")
        assert "<00:00:" in text  # word timestamps for players that highlight the word


def test_cues_break_lines_evenly_and_split_at_sentences() -> None:
    words = [WordEvent(f"w{i:02d}xxxx", i * 0.3, i * 0.3 + 0.25) for i in range(30)]
    words[9] = WordEvent("end.", words[9].start, words[9].end)
    made = cues(words, max_chars=30)
    assert [c for c in made if c.words[-1].word == "end."]  # a sentence ends its cue
    assert [w.word for c in made for w in c.words] == [w.word for w in words]
    for cue in made:
        assert len(cue.lines) <= 2
        assert all(len(line) <= 30 for line in cue.lines)
        if len(cue.lines) == 2:
            assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 8


def test_text_with_markup_characters_is_escaped_in_webvtt() -> None:
    made = cues([WordEvent("<b>&", 0.0, 0.5), WordEvent("-->", 0.5, 1.0)])
    text = to_webvtt(made)
    assert "&lt;b&gt;&amp;" in text
    # webvtt-py strips tags but leaves character references as written.
    assert [html.unescape(c.text) for c in webvtt.from_string(text).captions] == ["<b>& -->"]


def _caption_contrast(frame: np.ndarray, plain: np.ndarray) -> float:
    """WCAG contrast of the caption's text against what is behind it, inside the area the
    burner changed: the brightest tenth of the changed pixels against the median of the rest."""
    changed = np.abs(frame.astype(int) - plain.astype(int)).sum(axis=2) > 24
    assert changed.sum() > 500, "no caption drawn"
    luminance = (frame[changed] / 255.0) @ LUMA
    text = np.percentile(luminance, 95)
    behind = np.median(luminance[luminance < np.percentile(luminance, 60)])
    return float((text + 0.05) / (behind + 0.05))


@pytest.mark.parametrize("tone", ["dark", "bright"])
def test_burned_in_captions_are_readable_on_dark_and_bright_photos(tone: str) -> None:
    photo = np.asarray(Image.open(grace_photo()).convert("RGB").resize((512, 512)), float)
    plain = (photo * 0.15 if tone == "dark" else 255 - (255 - photo) * 0.1).astype(np.uint8)
    words = (WordEvent("Guten", 0.0, 0.4), WordEvent("Tag,", 0.4, 0.8), WordEvent("Welt.", 0.8, 1))
    burner = CaptionBurner(words, 25, 512, 512)
    frame = burner(plain, 12)  # 0.48 s: "Tag," is spoken
    assert _caption_contrast(frame, plain) >= MIN_CONTRAST
    rows = np.flatnonzero(np.abs(frame.astype(int) - plain.astype(int)).sum(axis=(1, 2)))
    assert rows.min() > 512 * 0.6  # near the bottom, clear of the face
    # The spoken word is highlighted (yellow: much more red than blue somewhere).
    diff = frame.astype(int)
    assert ((diff[..., 0] - diff[..., 2]) > 120).sum() > 30
    assert burner(plain, 30) is plain  # after the last word: nothing drawn
    assert font_path().is_file()


def test_render_writes_the_caption_file_beside_the_video(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    options = RenderOptions(size=256, captions="srt", lang="en")
    result = render_talking_head(grace_photo(), out, text=TEXT_EN, options=options)
    assert result.captions == tmp_path / "out.srt"
    speech = synthesize(TEXT_EN, "en")
    _check_cues_follow_words(result.captions.read_text(), speech.words, "srt")


def test_burn_draws_the_captions_into_the_video(tmp_path: Path) -> None:
    from facecast.video import iter_frames

    text = "Guten Tag, Herr Müller."
    plain = render_talking_head(
        grace_photo(), tmp_path / "plain.mp4", text=text, options=RenderOptions(size=256)
    )
    burned = render_talking_head(
        grace_photo(),
        tmp_path / "burned.mp4",
        text=text,
        options=RenderOptions(size=256, captions="burn"),
    )
    assert burned.captions == tmp_path / "burned.vtt"
    index = 15  # 0.6 s: the first cue is on screen
    a = next(f for i, f in enumerate(iter_frames(plain.video)) if i == index)
    b = next(f for i, f in enumerate(iter_frames(burned.video)) if i == index)
    assert _caption_contrast(b, a) >= MIN_CONTRAST


def test_recording_gets_captions_from_its_transcript(tmp_path: Path) -> None:
    spoken = "Guten Tag, Herr Müller. Heute sprechen wir über die neuen Öffnungszeiten."
    truth = synthesize(spoken, "de", None, "espeak")
    recording = tmp_path / "said.wav"
    save_wav(truth.audio, recording)
    result = render_talking_head(
        grace_photo(),
        tmp_path / "said.mp4",
        audio=recording,
        transcript=spoken,
        options=RenderOptions(size=256, captions="vtt"),
    )
    assert result.captions is not None
    _check_cues_follow_words(result.captions.read_text(), truth.words, "vtt")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from facecast.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


def test_cli_writes_captions_and_refuses_a_recording_without_transcript(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    done = _cli(
        "render", "--image", str(grace_photo()), "--text", "Hallo Welt.", "--size", "128",
        "--captions", "vtt", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [c.text for c in webvtt.read(str(tmp_path / "out.vtt")).captions] == ["Hallo Welt."]
    recording = tmp_path / "a.wav"
    save_wav(synthesize("Hallo.", "de").audio, recording)
    refused = _cli(
        "render", "--image", str(grace_photo()), "--audio", str(recording),
        "--captions", "srt", "-o", str(tmp_path / "b.mp4"),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "--transcript" in refused.stderr.strip().splitlines()[-1]


def test_captions_keep_the_text_as_written() -> None:
    """Normalised and lexicon words are said, the written ones shown: "2.14" spans the time
    of "zwei vierzehn", a lone dash stays with its word."""
    written = "Raum 2.14 ist links – Nguyen wartet."
    speech = synthesize(written, "de", None, "espeak", lexicon="[de]\nNguyen = Nguu-jen")
    assert [w.word for w in speech.words] == ["Raum", "2.14", "ist", "links –", "Nguyen", "wartet."]
    said = synthesize("Raum zwei vierzehn ist links – Nguu-jen wartet.", "de", None, "espeak")
    number = speech.words[1]
    assert number.start == pytest.approx(said.words[1].start, abs=0.01)
    assert number.end == pytest.approx(said.words[2].end, abs=0.01)


def test_pico_words_follow_its_own_pauses() -> None:
    """Pico pauses after "Montag," where espeak-ng runs on and pauses at the dash instead:
    the words still land on Pico's pause (pairing the phrases by count put "den" 1.6 s early)."""
    from facecast.speech.align import phrases

    text = "Raum zwei vierzehn ist am Montag, den siebten Dezember gegenüber der Firma Müller."
    speech = synthesize(text, "de", None, "pico")
    spans = phrases(speech.audio)
    gaps = [(a.end, b.start) for a, b in itertools.pairwise(spans)]
    gap = max(gaps, key=lambda g: g[1] - g[0])
    words = {w.word: w for w in speech.words}
    assert words["Montag,"].end <= gap[0] + TOLERANCE_S
    assert abs(words["den"].start - gap[1]) <= TOLERANCE_S

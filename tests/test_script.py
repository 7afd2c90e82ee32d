"""What will be spoken: pause marks, the user's lexicon, normalisation, and the silence they
make in real synthesised speech (Pico, the default voice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecast.errors import InvalidTextError
from facecast.pipeline import synthesize
from facecast.speech import script
from facecast.speech.script import InvalidLexiconError, Segment
from test_cli import facecast

LEXICON = """
# names the voices get wrong
[de]
Nguyen = Nujen
New York = Nju Jork
Dr. = Doktorin
[en]
Nguyen = Win
GIF = jiff
[en-gb]
GIF = giff
"""


def test_both_pause_spellings_cut_the_text() -> None:
    text = 'Eins [pause 500ms] zwei <break time="1.5s"/> drei <BREAK strength="strong" /> vier'
    assert script.segments(text) == (
        Segment("Eins", 0.5),
        Segment("zwei", 1.5),
        Segment("drei", 0.75),
        Segment("vier", 0.0),
    )
    assert script.segments("a <break/> b")[0].pause_after == script.BREAK_STRENGTHS["medium"]
    assert script.segments("[Pause 2 s]Hallo") == (Segment("", 2.0), Segment("Hallo", 0.0))


def test_pauses_in_a_row_add_up() -> None:
    assert script.segments("a [pause 200ms] [pause 300ms] b") == (
        Segment("a", 0.5),
        Segment("b", 0.0),
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a [pause 11s] b", "at most 10 s"),
        ('a <break time="soon"/> b', "500ms"),
        ('a <break strength="loud"/> b', "strength"),
        ("a [pause 1ms]" * (script.MAX_PAUSES + 1), "at most"),
    ],
)
def test_bad_pauses_are_refused_plainly(text: str, needle: str) -> None:
    with pytest.raises(InvalidTextError, match=needle):
        script.segments(text)


def test_text_that_only_looks_like_a_mark_is_spoken() -> None:
    assert script.segments("[pause] <b>fett</b> [pause 5 min]") == (
        Segment("[pause] <b>fett</b> [pause 5 min]", 0.0),
    )


def test_lexicon_words_by_language_whole_words_any_case() -> None:
    lexicon = script.parse_lexicon(LEXICON)
    assert script.apply_lexicon("Herr NGUYEN aus New York", "de", lexicon) == (
        "Herr Nujen aus Nju Jork"
    )
    assert script.apply_lexicon("Nguyens GIF", "en-US", lexicon) == "Nguyens jiff"
    assert script.apply_lexicon("a GIF", "en-GB", lexicon) == "a giff"
    assert script.apply_lexicon("Nguyen", "fr", lexicon) == "Nguyen"


def test_lexicon_goes_before_normalisation() -> None:
    prepared = script.prepare("Dr. Nguyen zahlt 3 € [pause 250ms] danke", "de", LEXICON)
    assert script.spoken_text(prepared) == "Doktorin Nujen zahlt drei Euro [pause 250ms] danke"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Nguyen = Win", "line 1"),
        ("[en]\n\nGIF jiff", "line 3"),
        ("[en]\nGIF =", "line 2"),
        ("[en]\nx = a [pause 1s] b", "line 2"),
        ("[en]\n" + "x" * 101 + " = y", "line 2"),
    ],
)
def test_broken_lexicons_name_their_line(text: str, line: str) -> None:
    with pytest.raises(InvalidLexiconError, match=line):
        script.parse_lexicon(text)


def test_lexicon_size_is_bounded() -> None:
    many = "[en]\n" + "\n".join(f"w{i} = v" for i in range(script.MAX_LEXICON_ENTRIES + 1))
    with pytest.raises(InvalidLexiconError, match="at most"):
        script.parse_lexicon(many)


def test_a_pause_is_real_silence_between_the_words() -> None:
    plain = synthesize("Guten Morgen. Wie geht es dir?", "de")
    paused = synthesize("Guten Morgen. [pause 1200ms] Wie geht es dir?", "de")
    rate = paused.audio.sample_rate
    # the pause adds its length (each piece keeps its own lead-in and tail)
    assert paused.audio.duration - plain.audio.duration == pytest.approx(1.2, abs=0.45)
    window = rate // 50
    frames = paused.audio.samples[: len(paused.audio.samples) // window * window]
    loud = np.sqrt(np.mean(frames.reshape(-1, window).astype(np.float64) ** 2, axis=1))
    quiet = loud < 0.01 * loud.max()
    longest, run = 0, 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    assert longest * window / rate >= 1.2
    # the second sentence's phonemes come after the silence, in order
    starts = [e.start for e in paused.phonemes]
    assert starts == sorted(starts)
    gap = max(b.start - a.end for a, b in zip(paused.phonemes, paused.phonemes[1:], strict=False))
    assert gap >= 1.1


def test_lexicon_changes_what_the_voice_says() -> None:
    said = synthesize("GIF", "en", lexicon="[en]\nGIF = graphics interchange format")
    plain = synthesize("GIF", "en")
    assert said.audio.duration > plain.audio.duration + 0.5


def test_a_text_of_only_pauses_is_refused() -> None:
    with pytest.raises(InvalidTextError):
        synthesize("[pause 1s] <break/>", "de")


def test_cli_shows_the_spoken_text_and_refuses_a_broken_lexicon(tmp_path: Path) -> None:
    lexicon = tmp_path / "names.txt"
    lexicon.write_text(LEXICON, encoding="utf-8")
    shown = facecast(
        "tts", "--show-text", "--lang", "de", "--lexicon", lexicon,
        "--text", 'Dr. Nguyen kommt um 9 Uhr. <break time="700ms"/> Bis dann!',
        cwd=tmp_path,
    )  # fmt: skip
    assert shown.code == 0, shown.stderr
    assert shown.stdout.strip() == "Doktorin Nujen kommt um neun Uhr. [pause 700ms] Bis dann!"
    assert not (tmp_path / "speech.wav").exists()

    broken = tmp_path / "broken.txt"
    broken.write_text("[de]\nNguyen Nujen\n", encoding="utf-8")
    run = facecast("tts", "--text", "Hallo", "--lexicon", broken, cwd=tmp_path)
    assert run.code == 2 and run.stderr.strip() == (
        "error: Lexicon line 2: write it as `word = how to say it`."
    )
    run = facecast("tts", "--text", "a [pause 12s] b", cwd=tmp_path)
    assert run.code == 2 and run.stderr.strip() == "error: A pause may last at most 10 s."

"""Speech backends side by side: speed, first audio, and how well a recogniser understands them.

For each installed backend (and each Piper voice): real-time factor on ~10 s of German and
~10 s of English, the time until the first audio is in hand, and the English word error rate
that pocketsphinx (`pip install -e '.[bench]'`, its wheel ships the en-us model) gets on ten
sentences. A lower error rate means speech closer to what a recogniser trained on people
expects. Prints a Markdown table.

    python bench/speech.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from facecast.audio import AudioTrack, resample
from facecast.pipeline import synthesize
from facecast.speech import registry

GERMAN = (
    "Guten Morgen! Heute stellen wir Ihnen unser neues Programm vor. Es hilft kleinen "
    "Firmen, ihre Kunden besser zu erreichen, und kostet nur wenig. Rufen Sie uns einfach an "
    "oder schreiben Sie uns eine Nachricht."
)
ENGLISH = (
    "Good morning! Today we would like to show you our new program. It helps small "
    "companies reach their customers, and it costs very little. Just give us a call or send "
    "us a short message."
)
WER_SENTENCES = (
    "The weather is nice today.",
    "Please open the window in the kitchen.",
    "My brother bought a new car last week.",
    "We will meet at the station at noon.",
    "She reads a book every evening before bed.",
    "The children are playing in the garden.",
    "Can you tell me the way to the museum?",
    "I would like a cup of coffee with milk.",
    "The train was late because of the snow.",
    "Thank you very much for your help.",
)
RECOGNISER_RATE = 16_000


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z']+", text.lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def recognise(track: AudioTrack) -> str:
    """pocketsphinx's transcript of `track` (default en-us acoustic and language model)."""
    from pocketsphinx import Decoder

    audio = resample(track, RECOGNISER_RATE)
    pcm = (np.clip(audio.samples, -1, 1) * 32767).astype("<i2").tobytes()
    decoder = Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def word_error_rate(backend: str, voice: str) -> float:
    errors = total = 0
    for sentence in WER_SENTENCES:
        speech = synthesize(sentence, "en", voice, backend=backend)
        ref = words(sentence)
        errors += edit_distance(ref, words(recognise(speech.audio)))
        total += len(ref)
    return errors / total


def timing(backend: str, voice: str, text: str, lang: str, repeat: int) -> tuple[float, float]:
    """(real-time factor, seconds until the audio is in hand), best of `repeat` warm runs."""
    synthesize(text, lang, voice, backend=backend)  # warm: models loaded, caches filled
    best = float("inf")
    duration = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        speech = synthesize(text, lang, voice, backend=backend)
        best = min(best, time.perf_counter() - started)
        duration = speech.audio.duration
    return best / duration, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        "| backend:voice | natural | timings | RTF de | RTF en | first audio de/en (s) | WER en |"
    )
    print("|---|---|---|---|---|---|---|")
    for backend in registry.ranked_backends():
        caps = backend.capabilities
        for lang_voices in _voices_to_bench(backend.name):
            voice_de, voice_en = lang_voices
            names = dict.fromkeys(name for name in (voice_de, voice_en) if name is not None)
            label = " / ".join(f"{backend.name}:{name}" for name in names)
            row = [label, "yes" if caps.natural else "no"]
            row.append("yes" if caps.phoneme_timings else "no")
            rtf_de = first_de = rtf_en = first_en = float("nan")
            if voice_de is not None:
                rtf_de, first_de = timing(backend.name, voice_de, GERMAN, "de", args.repeat)
            if voice_en is not None:
                rtf_en, first_en = timing(backend.name, voice_en, ENGLISH, "en", args.repeat)
            wer = word_error_rate(backend.name, voice_en) if voice_en is not None else float("nan")
            row += [_num(rtf_de, "{:.3f}"), _num(rtf_en, "{:.3f}")]
            row += [f"{_num(first_de, '{:.2f}')} / {_num(first_en, '{:.2f}')}", _num(wer, "{:.0%}")]
            print("| " + " | ".join(row) + " |", flush=True)


def _num(value: float, spec: str) -> str:
    return "-" if value != value else spec.format(value)  # NaN: not measured


def _voices_to_bench(backend: str) -> list[tuple[str | None, str | None]]:
    """(German voice, English voice) pairs: each Piper voice alone, one row otherwise."""
    voices = [v for v in registry.catalogue() if v.backend == backend]
    german = next((v.name for v in voices if registry.speaks(v, "de")), None)
    english = [v.name for v in voices if registry.speaks(v, "en")]
    if backend == "espeak":
        return [("default", "default")]
    if backend == "piper":
        return [(None, name) for name in english]
    return [(german, english[0] if english else None)]


if __name__ == "__main__":
    main()

"""Every voice side by side: pitch, speed, first audio, intelligibility and ear proxies.

For each installed voice (Pico's twelve, male and female; each Piper voice; espeak-ng's plain
voice): its median F0 (WORLD), the real-time factor on ~10 s of text in its language (English
where it speaks English), the time until that audio is in hand, the English word error rate
that pocketsphinx (`pip install -e '.[bench]'`, its wheel ships the en-us model) gets on twenty
sentences written for this bench, and two ear proxies: spectral flatness of the loud frames
(buzz and hiss raise it) and the peak level (clipping). Then what rate 0.7 and 1.5 cost the
English Pico voices in WER. Prints Markdown tables.

    python bench/speech.py [--repeat 3] [--voices pico:en-US,pico:en-US-male]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time
from dataclasses import dataclass

import numpy as np
import psutil
import pyworld

from facecast.audio import AudioTrack, resample
from facecast.pipeline import synthesize
from facecast.speech import VoiceInfo, registry
from facecast.speech.voicing import NEUTRAL, Prosody

TEXTS = {
    "de": (
        "Guten Morgen! Heute stellen wir Ihnen unser neues Programm vor. Es hilft kleinen "
        "Firmen, ihre Kunden besser zu erreichen, und kostet nur wenig. Rufen Sie uns einfach "
        "an oder schreiben Sie uns eine Nachricht."
    ),
    "en": (
        "Good morning! Today we would like to show you our new program. It helps small "
        "companies reach their customers, and it costs very little. Just give us a call or "
        "send us a short message."
    ),
    "fr": (
        "Bonjour ! Aujourd'hui, nous vous présentons notre nouveau programme. Il aide les "
        "petites entreprises à mieux atteindre leurs clients et ne coûte presque rien. "
        "Appelez-nous ou envoyez-nous un message."
    ),
    "es": (
        "¡Buenos días! Hoy les presentamos nuestro nuevo programa. Ayuda a las pequeñas "
        "empresas a llegar mejor a sus clientes y cuesta muy poco. Llámenos o envíenos un "
        "mensaje."
    ),
    "it": (
        "Buongiorno! Oggi vi presentiamo il nostro nuovo programma. Aiuta le piccole imprese "
        "a raggiungere meglio i loro clienti e costa pochissimo. Chiamateci o mandateci un "
        "messaggio."
    ),
}
"""~10 s of speech per language for the timings and the pitch."""
WER_SENTENCES = (
    "The library closes early on Sunday afternoon.",
    "Could you send me the report before lunch?",
    "Our neighbours planted three apple trees last spring.",
    "The doctor said I should drink more water.",
    "He forgot his umbrella on the bus again.",
    "We are looking for a small flat near the river.",
    "Please turn off the lights when you leave the room.",
    "The meeting has been moved to next Tuesday.",
    "My sister plays the piano in a small band.",
    "It was cold and windy at the top of the hill.",
    "They sold the old house and moved to the city.",
    "The price of bread went up again this month.",
    "I have never seen so many birds in one place.",
    "The new bridge will open at the end of the year.",
    "Write your name at the top of the first page.",
    "The shop on the corner sells fresh fish every morning.",
    "She called her mother as soon as the plane landed.",
    "Most people in the village work on farms.",
    "The film was long but the music was beautiful.",
    "Remember to lock the door before you go to sleep.",
)
"""Twenty everyday sentences (184 words), written for this bench."""
RATES = (0.7, 1.5)
"""Rates whose WER cost is measured on the English Pico voices."""
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


def word_error_rate(voice: VoiceInfo, prosody: Prosody = NEUTRAL) -> float:
    """pocketsphinx's word error rate on WER_SENTENCES spoken by `voice`."""
    errors = total = 0
    lang = bench_language(voice)
    for sentence in WER_SENTENCES:
        speech = synthesize(sentence, lang, voice.name, backend=voice.backend, prosody=prosody)
        ref = words(sentence)
        errors += edit_distance(ref, words(recognise(speech.audio)))
        total += len(ref)
    return errors / total


def median_f0(track: AudioTrack) -> float:
    """Median F0 (Hz) of the voiced frames (WORLD's Harvest: DIO doubles joe's F0 in places)."""
    x = track.samples.astype(np.float64)
    f0, _ = pyworld.harvest(x, track.sample_rate, f0_floor=60.0, f0_ceil=500.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else float("nan")


def flatness(track: AudioTrack) -> float:
    """Mean spectral flatness (0-4 kHz) of the loud 32 ms frames at 16 kHz: a buzzy or hissy
    resynthesis raises it; a clean voiced spectrum (harmonics over quiet gaps) keeps it low."""
    x = resample(track, RECOGNISER_RATE).samples.astype(np.float64)
    size, hop = 512, 160
    frames = np.stack([x[i : i + size] for i in range(0, len(x) - size, hop)])
    energy = np.sqrt((frames**2).mean(axis=1))
    frames = frames[energy > 0.1 * energy.max()]
    power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2 + 1e-12
    band = power[:, :128]
    return float(np.mean(np.exp(np.log(band).mean(axis=1)) / band.mean(axis=1)))


def cpu_seconds() -> float:
    """CPU time of this process and its children (Pico's helper), user + system."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


@dataclass(frozen=True)
class Timing:
    """Best of the warm runs: wall-clock and CPU real-time factors, first audio, the audio."""

    rtf: float
    cpu_rtf: float
    """CPU seconds per second of speech: what the voice costs, whatever else the machine runs."""
    first: float
    audio: AudioTrack


def timing(voice: VoiceInfo, repeat: int) -> Timing:
    """How fast `voice` speaks ~10 s of its bench language, best of `repeat` warm runs."""
    lang = bench_language(voice)
    text = TEXTS[lang.split("-")[0]]
    synthesize(text, lang, voice.name, backend=voice.backend)  # warm: loaded, caches filled
    best = best_cpu = float("inf")
    audio = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), cpu_seconds()
        speech = synthesize(text, lang, voice.name, backend=voice.backend)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, cpu_seconds() - cpu)
        audio = speech.audio
    assert audio is not None
    return Timing(best / audio.duration, best_cpu / audio.duration, best, audio)


def bench_language(voice: VoiceInfo) -> str:
    """English where the voice speaks it (for the WER), else its first benched language."""
    for lang in ("en", "en-gb", *TEXTS):
        if registry.speaks(voice, lang):
            return lang
    return voice.languages[0]


def benched_voices(only: set[str] | None) -> list[VoiceInfo]:
    """Every voice but espeak-ng's variants and cloning voices (they need a sample)."""
    voices = [
        v
        for v in registry.catalogue()
        if not v.cloning and (v.backend != "espeak" or v.name == "default")
    ]
    return [v for v in voices if only is None or v.id in only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--voices", default=None, help="Comma-separated voice ids only.")
    parser.add_argument("--no-wer", action="store_true", help="Timings and pitch only.")
    args = parser.parse_args()
    only = set(args.voices.split(",")) if args.voices else None
    print(
        "| voice | gender | natural | timings | lang | median F0 (Hz) | RTF | CPU RTF "
        "| first audio (s) | WER en | flatness | peak (dBFS) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    english: list[VoiceInfo] = []
    for voice in benched_voices(only):
        lang = bench_language(voice)
        measured = timing(voice, args.repeat)
        audio = measured.audio
        wer = float("nan")
        if lang.startswith("en") and not args.no_wer:
            wer = word_error_rate(voice)
            english += [voice] if voice.backend == "pico" else []
        peak = 20 * np.log10(float(np.max(np.abs(audio.samples))) + 1e-12)
        row = [voice.id, voice.gender, "yes" if voice.natural else "no"]
        row += ["yes" if voice.timings else "no", lang, f"{median_f0(audio):.0f}"]
        row += [f"{measured.rtf:.3f}", f"{measured.cpu_rtf:.3f}", f"{measured.first:.2f}"]
        row += [_num(wer, "{:.1%}")]
        row += [f"{flatness(audio):.4f}", f"{peak:.1f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    if english:
        print()
        print("| voice | " + " | ".join(f"WER at rate {rate:g}" for rate in RATES) + " |")
        print("|---|" + "---|" * len(RATES))
        for voice in english:
            cells = [f"{word_error_rate(voice, Prosody(rate=rate)):.1%}" for rate in RATES]
            print(f"| {voice.id} | " + " | ".join(cells) + " |", flush=True)


def _num(value: float, spec: str) -> str:
    return "-" if value != value else spec.format(value)  # NaN: not measured


if __name__ == "__main__":
    main()

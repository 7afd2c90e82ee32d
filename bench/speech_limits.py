"""What the speech guards cost, on this machine's CPU.

    python bench/speech_limits.py

Prints:
  (a) how long refusing 5000 CJK characters takes (normalise + estimate, before any synthesis),
      against what synthesising them would have produced;
  (b) normalisation throughput for German and English shop/news text;
  (c) a text that fools the estimate (Japanese kanji, which espeak spells slowly) with a 20 s
      cap: estimated seconds, audio seconds produced, wall time;
  (d) the slowest of a few hostile 5000-character inputs (the API normalises at submit).
"""

from __future__ import annotations

import os
import time

from facecast.config import get_settings
from facecast.errors import SpeechTooLongError
from facecast.speech.espeak import EspeakBackend
from facecast.speech.limits import estimate_seconds, synthesize_capped
from facecast.speech.normalize import normalize

CJK = ("会议在下午开始我们讨论了很多问题" * 320)[:5000]
GERMAN = (
    "Am 3.12.2026 um 14:30 Uhr kostet der Fernseher 1.299,00 € inkl. MwSt., z. B. bei "
    "Dr. Müller in der Hauptstr. 12. Rückfragen unter Tel. 030 12345678. "
)
ENGLISH = (
    "On March 3, 2026 at 2:30 pm the TV costs $1,299.00, e.g. at Dr. Miller's on Baker St. "
    "Call (555) 123-4567 or visit www.example.com. "
)
KANJI = "今日は天気が良いので公園に行きます"
CAP_SECONDS = 20.0


def refuse_bomb() -> None:
    from facecast import pipeline

    started = time.perf_counter()
    try:
        pipeline.synthesize(CJK, "cmn")
    except SpeechTooLongError as exc:
        elapsed = time.perf_counter() - started
        print(f"(a) 5000 CJK characters refused in {elapsed * 1000:.1f} ms: {exc.message}")
    else:
        print("(a) 5000 CJK characters were NOT refused")


def normalise_speed() -> None:
    for lang, text in (("de", GERMAN * 30), ("en", ENGLISH * 30)):
        normalize(text, lang)  # compile the rules once
        started = time.perf_counter()
        rounds = 5
        for _ in range(rounds):
            normalize(text, lang)
        per_round = (time.perf_counter() - started) / rounds
        print(f"(b) normalise {lang}: {len(text)} chars in {per_round * 1000:.1f} ms")


def slipping_text() -> None:
    text = KANJI * 8
    started = time.perf_counter()
    speech = synthesize_capped(EspeakBackend(), text, "ja", None, CAP_SECONDS)
    elapsed = time.perf_counter() - started
    print(
        f"(c) kanji text: estimated {estimate_seconds(text):.1f} s, produced "
        f"{speech.audio.duration:.1f} s (cap {CAP_SECONDS:.0f} s) in {elapsed:.2f} s"
    )


def hostile() -> None:
    texts = ["a." * 2500, "1." * 2500, "1-" * 2500, "3.12." * 1000, "x@y.de " * 700, "1 " * 2500]
    worst = 0.0
    for text in texts:
        for lang in ("de", "en"):
            started = time.perf_counter()
            normalize(text, lang)
            worst = max(worst, time.perf_counter() - started)
    print(f"(d) slowest hostile 5000-character input: {worst * 1000:.0f} ms")


def main() -> None:
    os.environ.setdefault("FACECAST_DATA_DIR", "/tmp/facecast-bench")
    get_settings.cache_clear()
    refuse_bomb()
    normalise_speed()
    slipping_text()
    hostile()


if __name__ == "__main__":
    main()

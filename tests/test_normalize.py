"""Text normalisation, case by case: news, shop and appointment sentences in German and English.

The cases live in normalize_cases.tsv: language, written text, expected spoken text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facecast.speech.normalize import normalize

CASES_FILE = Path(__file__).with_name("normalize_cases.tsv")


def load_cases() -> list[tuple[str, str, str]]:
    lines = CASES_FILE.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return [(lang, written, spoken) for lang, written, spoken in rows]


CASES = load_cases()


@pytest.mark.parametrize(("lang", "written", "spoken"), CASES)
def test_sentence(lang: str, written: str, spoken: str) -> None:
    assert normalize(written, lang) == spoken


def test_the_list_is_long_enough_in_both_languages() -> None:
    assert sum(lang == "de" for lang, _, _ in CASES) >= 120
    assert sum(lang == "en" for lang, _, _ in CASES) >= 30


MANY_DATES = "am Mo., 7.12. und " * 500
GROWTH = 10


def test_thousands_of_dates_cost_linear_time() -> None:
    """The case rules look at a short window before each date, not the whole text before it:
    ten times the dates must cost about ten times the work, not a hundred (it was
    quadratic). CPU time, best of five, so other processes on the machine matter less."""
    import time

    def seconds(text: str) -> float:
        started = time.process_time()
        normalize(text, "de")
        return time.process_time() - started

    normalize(MANY_DATES[:100], "de")  # compile the rules
    short = min(seconds(MANY_DATES[: len(MANY_DATES) // GROWTH]) for _ in range(5))
    long = min(seconds(MANY_DATES) for _ in range(5))
    assert long < short * GROWTH * 2.5


@pytest.mark.parametrize("lang", ["de-DE", "de_AT", "DE"])
def test_german_regions_use_the_german_rules(lang: str) -> None:
    assert normalize("Am 3.12.2026 um 14:30 Uhr", lang) == (
        "Am dritten Dezember zweitausendsechsundzwanzig um vierzehn Uhr dreißig"
    )


def test_british_dates_put_the_day_first() -> None:
    assert normalize("Delivery on 04/05/2026.", "en-GB") == (
        "Delivery on the fourth of May twenty twenty-six."
    )
    assert normalize("Delivery on 04/05/2026.", "en-US") == (
        "Delivery on April fifth, twenty twenty-six."
    )


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("fr", "Nous avons 3 chats à 14:30, z. B. 19,99 €."),
        ("zh", "会议在 14:30 开始，费用 19.99 元。"),
        ("ja", "3月12日 14:30"),
        ("ar", "السعر 5 دولارات"),
    ],
)
def test_other_languages_pass_through_unchanged(lang: str, text: str) -> None:
    assert normalize(text, lang) == text


def test_absurdly_long_numbers_are_read_digit_by_digit() -> None:
    assert normalize("12345678901234567890", "en") == " ".join(
        ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero"] * 2
    )


def test_text_without_anything_to_normalise_is_unchanged() -> None:
    text = "Guten Morgen, wie geht es Ihnen heute?"
    assert normalize(text, "de") == text


HOSTILE = [
    "a." * 2500,
    "1." * 2500,
    "1-" * 2500,
    "3.12." * 1000,
    "x@y.de " * 700,
    "€1" * 2500,
    "1" * 5000,
    "1," + "0" * 4990 + " €",
    "9" * 15 + "." + "9" * 4000,
    # Shapes the German form rules look for (issue 22): rooms, outlines, postcodes, codes.
    "Raum 1." * 700,
    "1.2.3.4.5.6." * 400,
    ", 12345 A" * 550,
    "DE89 1234 " * 500,
    "Nummer A1" * 550,
    "11.11.-" * 700,
    "8.30-" * 1000,
    "1/" * 2500,
    "€/" * 2500,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: repr(text[:6]))
@pytest.mark.parametrize("lang", ["de", "en"])
def test_hostile_text_is_normalised_without_failing(text: str, lang: str) -> None:
    """Thousands of digits once overflowed int() (a 500 at submit); every input becomes words."""
    spoken = normalize(text, lang)
    assert spoken and not any(char.isdigit() for char in spoken)

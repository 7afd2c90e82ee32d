"""Number words and the context rules share: cardinals, ordinals, years and digit runs in
German and English, and the look-behind that picks a German ordinal's ending or keeps a
sentence's period. Used by the rule tables of `normalize.py`."""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

from facecast.speech.normalize_tables import (
    Language,
    Unit,
)

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


MAX_CARDINAL_DIGITS = 15
"""Longer digit runs are read digit by digit (num2words tops out; nobody says them anyway)."""


DE_NUMBER = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"


EN_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def digits_read(digits: str, language: Language) -> str:
    """Each digit as a word: "030" -> "null drei null"."""
    return " ".join(language.digits[int(d)] for d in digits if d.isdigit())


def cardinal(number: int, language: Language) -> str:
    """An integer as words; very long ones digit by digit."""
    if len(str(abs(number))) > MAX_CARDINAL_DIGITS:
        return digits_read(str(abs(number)), language)
    words = str(num2words(number, lang=language.code))
    if language.code == "en":
        words = words.replace(",", "")
    return words


def count_word(number: int, unit: Unit, language: Language) -> str:
    """A number before a noun: German "1" is "ein"/"eine", not "eins"."""
    if language.code == "de" and number == 1:
        return "eine" if unit.feminine else "ein"
    if language.code == "de" and str(number).endswith("01") and number > 100:
        return cardinal(number, language)[: -len("eins")] + "ein"
    return cardinal(number, language)


def split_number(written: str, language: Language) -> tuple[int, str | None]:
    """ "1.299,50" -> (1299, "50") in German; the decimals as written, or None."""
    whole, _, decimals = written.replace(language.group, "").partition(language.decimal)
    return int(whole), decimals or None


def number_words(written: str, language: Language) -> str:
    """A written number with separators ("1.299,5") as words."""
    whole, decimals = split_number(written, language)
    words = cardinal(whole, language)
    if decimals is not None:
        words = f"{words} {language.point} {digits_read(decimals, language)}"
    return words


def ordinal(number: int, language: Language, ending: str = "") -> str:
    """An ordinal: German "dritte" plus a case ending ("r", "n"), English "third"."""
    if number > 10**6:
        return cardinal(number, language)
    words = str(num2words(number, lang=language.code, to="ordinal"))
    if language.code == "en":
        return words.replace(",", "")
    return words + ending


def year(number: int, language: Language) -> str:
    """A year as it is read: "neunzehnhundertneunundachtzig", "twenty twenty-six"."""
    if not 1000 <= number <= 2999:
        return cardinal(number, language)
    return str(num2words(number, lang=language.code, to="year")).replace(",", "")


GERMAN_NOUN_AFTER = re.compile(r"\s+([A-ZÄÖÜ][a-zäöüß]+)\b")


DATIVE_BEFORE = re.compile(
    r"(?:\b(?:am|vom|zum|beim|im|dem|den|des|ab dem|seit dem|bis zum|ab|bis|seit)\s+)$",
    re.IGNORECASE,
)
"""German words after which an ordinal takes the ending -en ("am dritten Dezember")."""


_DATIVE_BEFORE_DER = re.compile(
    r"(?:\b(?:in|an|auf|bei|mit|nach|seit|von|zu|aus|vor|ab|bis zu|während|wegen)\s+der\s+)$",
    re.IGNORECASE,
)
"""A preposition before "der" makes it dative or genitive ("in der 49. KW": "-sten")."""


WEEKDAY_BEFORE = re.compile(
    r"\b(?:am|vom|zum|bis zum|ab|ab dem|seit|seit dem|bis|für|nach dem|vor dem)\s+"
    r"(?:Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag),\s*$",
    re.IGNORECASE,
)
"""A weekday after a preposition, then a date: the date takes "den" and the dative
("am Montag, 7.12." -> "am Montag, den siebten Dezember")."""


NOMINATIVE_BEFORE = re.compile(r"(?:\b(?:der|die|das)\s+)$", re.IGNORECASE)
"""German words after which an ordinal takes the ending -e ("der dritte Platz")."""


YEAR_BEFORE = {
    "de": re.compile(
        r"(?:\b(?:im Jahre?|Jahre?s?|seit|bis|von|ab|anno|Anfang|Mitte|Ende|Herbst|Frühjahr|"
        r"Sommer|Winter|Frühling)\s+)$",
        re.IGNORECASE,
    ),
    "en": re.compile(
        r"(?:\b(?:in|since|by|until|from|of|year|during|before|after|around|circa|early|"
        r"late|mid|spring|summer|autumn|fall|winter)\s+)$",
        re.IGNORECASE,
    ),
}


BEFORE_WINDOW = 60
"""Characters before a match that the case rules look at: enough for "bis zum Montag, " and
cheap, so that thousands of dates in one text do not scan the whole text each."""


def text_before(match: re.Match[str]) -> str:
    """The text just before `match`, without a word the window cut in half."""
    start = max(0, match.start() - BEFORE_WINDOW)
    window = match.string[start : match.start()]
    if start and match.string[start - 1].isalnum():
        window = window.partition(" ")[2]
    return window


def ordinal_ending(text_before: str) -> str:
    """The German case ending of an ordinal given the words before it."""
    if DATIVE_BEFORE.search(text_before) or _DATIVE_BEFORE_DER.search(text_before):
        return "n"
    if NOMINATIVE_BEFORE.search(text_before):
        return ""
    return "r"


def pad(words: str) -> str:
    return f" {words} "


_SENTENCE_END = re.compile(r"\s*$")


_NEXT_SENTENCE = re.compile(r"\s+[A-Z]")


def keeps_period(match: re.Match[str], before_capital: bool) -> bool:
    """Whether the dot a rule swallowed also ended the sentence: at the end of the text, or
    (for English words that usually end one) before a capital letter. German capitalises
    nouns, so there a capital says nothing."""
    rest = match.string[match.end() :]
    return bool(_SENTENCE_END.fullmatch(rest) or (before_capital and _NEXT_SENTENCE.match(rest)))

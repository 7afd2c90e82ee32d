"""Text normalisation for German and English: written forms -> words a synthesiser reads well.

`normalize(text, lang)` runs before every backend (see `pipeline.synthesize`). Rules are tables of
regular expressions applied in a fixed order, most specific first: URLs and e-mail addresses,
abbreviations, phone numbers, dates, times, money, percentages, units, ordinals, then plain
numbers and the symbols left over. German adds the shapes of forms, letters and signs: IBANs,
postcodes, IDs after "Nummer", room and section numbers, house numbers, "€/kg". The words come
from the per-language tables in `normalize_tables.py`, numbers through `num2words`. Languages
other than German and English pass through unchanged. Patterns are bounded where they could
backtrack, so hostile input stays fast (bench/speech_limits.py measures it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from num2words import num2words

from facecast.speech.normalize_tables import (
    FEMININE_ENDINGS,
    IDENTIFIER_NOUNS,
    LANGUAGES,
    ORDINAL_NOUNS,
    ROOM_NOUNS,
    SECTION_NOUNS,
    STREET_ENDINGS,
    Language,
    Unit,
)

__all__ = ["LANGUAGES", "normalize"]

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

MAX_CARDINAL_DIGITS = 15
"""Longer digit runs are read digit by digit (num2words tops out; nobody says them anyway)."""
PHONE_MIN_DIGITS = 6
"""A digit group this long starting with 0 or + reads like a phone number."""


# --- shared pattern pieces --------------------------------------------------------------------

_DE_NUMBER = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
_EN_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# Bounded label lengths and counts keep these linear on hostile input (5000 x "a.").
_URL = re.compile(
    r"(?<![\w.@-])(?:(?:https?://|www\.)[^\s<>\"']{1,200}|[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})"
    r"{0,6}\.(?:de|com|org|net|eu|at|ch|io|info|co\.uk|uk)(?:/[^\s<>\"']{0,200})?)"
    r"(?<![.,;:!?)])(?![\w.-]*\w)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,6}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ \u00a0]?(?:\(0\)[ \u00a0]?)?|\(0\d{1,5}\)[ \u00a0]?|0)"
    r"\d[\d \u00a0/-]*\d(?![\d,.]\d)"
)
_US_PHONE = re.compile(
    r"(?<![\w-])(?:\+?1[-\s])?(?:(?:\(\d{3}\)\s?|\d{3}-)\d{3}-\d{4}|\d{3}-\d{4})(?![\w-])"
)
_SPACES = re.compile(r"[ \t\u00a0]+")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?])")


def _base(lang: str) -> str:
    return lang.strip().lower().replace("_", "-").split("-")[0]


def normalize(text: str, lang: str) -> str:
    """`text` as words for a synthesiser speaking `lang`; other languages come back unchanged."""
    language = LANGUAGES.get(_base(lang))
    if language is None:
        return text
    region = lang.strip().lower().replace("_", "-")
    for pattern, replace in _compiled_rules(language.code, region):
        text = pattern.sub(replace, text)
    text = _SPACES.sub(" ", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


# --- number words -----------------------------------------------------------------------------


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


def _count_word(number: int, unit: Unit, language: Language) -> str:
    """A number before a noun: German "1" is "ein"/"eine", not "eins"."""
    if language.code == "de" and number == 1:
        return "eine" if unit.feminine else "ein"
    if language.code == "de" and str(number).endswith("01") and number > 100:
        return cardinal(number, language)[: -len("eins")] + "ein"
    return cardinal(number, language)


def _split_number(written: str, language: Language) -> tuple[int, str | None]:
    """ "1.299,50" -> (1299, "50") in German; the decimals as written, or None."""
    whole, _, decimals = written.replace(language.group, "").partition(language.decimal)
    return int(whole), decimals or None


def number_words(written: str, language: Language) -> str:
    """A written number with separators ("1.299,5") as words."""
    whole, decimals = _split_number(written, language)
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


# --- rules ------------------------------------------------------------------------------------

_GERMAN_NOUN_AFTER = re.compile(r"\s+([A-ZÄÖÜ][a-zäöüß]+)\b")

_DATIVE_BEFORE = re.compile(
    r"(?:\b(?:am|vom|zum|beim|im|dem|den|des|ab dem|seit dem|bis zum|ab|bis|seit)\s+)$",
    re.IGNORECASE,
)
"""German words after which an ordinal takes the ending -en ("am dritten Dezember")."""
_DATIVE_BEFORE_DER = re.compile(
    r"(?:\b(?:in|an|auf|bei|mit|nach|seit|von|zu|aus|vor|ab|bis zu|während|wegen)\s+der\s+)$",
    re.IGNORECASE,
)
"""A preposition before "der" makes it dative or genitive ("in der 49. KW": "-sten")."""
_WEEKDAY_BEFORE = re.compile(
    r"\b(?:am|vom|zum|bis zum|ab|ab dem|seit|seit dem|bis|für|nach dem|vor dem)\s+"
    r"(?:Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag),\s*$",
    re.IGNORECASE,
)
"""A weekday after a preposition, then a date: the date takes "den" and the dative
("am Montag, 7.12." -> "am Montag, den siebten Dezember")."""
_NOMINATIVE_BEFORE = re.compile(r"(?:\b(?:der|die|das)\s+)$", re.IGNORECASE)
"""German words after which an ordinal takes the ending -e ("der dritte Platz")."""
_YEAR_BEFORE = {
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


def _text_before(match: re.Match[str]) -> str:
    """The text just before `match`, without a word the window cut in half."""
    start = max(0, match.start() - BEFORE_WINDOW)
    window = match.string[start : match.start()]
    if start and match.string[start - 1].isalnum():
        window = window.partition(" ")[2]
    return window


def _ordinal_ending(text_before: str) -> str:
    """The German case ending of an ordinal given the words before it."""
    if _DATIVE_BEFORE.search(text_before) or _DATIVE_BEFORE_DER.search(text_before):
        return "n"
    if _NOMINATIVE_BEFORE.search(text_before):
        return ""
    return "r"


def _pad(words: str) -> str:
    return f" {words} "


_SENTENCE_END = re.compile(r"\s*$")
_NEXT_SENTENCE = re.compile(r"\s+[A-Z]")


def _keeps_period(match: re.Match[str], before_capital: bool) -> bool:
    """Whether the dot a rule swallowed also ended the sentence: at the end of the text, or
    (for English words that usually end one) before a capital letter. German capitalises
    nouns, so there a capital says nothing."""
    rest = match.string[match.end() :]
    return bool(_SENTENCE_END.fullmatch(rest) or (before_capital and _NEXT_SENTENCE.match(rest)))


def _abbreviation_rules(language: Language) -> list[Rule]:
    rules: list[Rule] = []
    before_number = {written for written, _ in language.number_abbreviations}
    table = (*language.abbreviations, *language.number_abbreviations)
    # Longest first, so "Sept." wins over "Sep." and "u.U." over "u.".
    for written, spoken in sorted(table, key=lambda p: -len(p[0])):
        final = spoken in language.final_abbreviations
        variants = [(written, spoken)]
        # "Z. B." at the start of a sentence; but a capital "F." or "U." is an initial.
        if written[0].islower() and len(written) > 2 and written not in before_number:
            variants.append((written[0].upper() + written[1:], spoken[0].upper() + spoken[1:]))
        for form, said in variants:
            parts = [re.escape(part) for part in form.rstrip(".").split(".")]
            body = r"\.\s?".join(parts) + r"\."
            if (language.code == "en" and form == "No.") or form in before_number:
                body += r"(?=\s?\d)"  # "No." is "number" only before a digit
            start = r"(?<![\w.])"
            if form in language.units:  # "10 Min." is a unit, read with its number later
                start += r"(?<!\d )"
            pattern = re.compile(start + body)

            def replace(match: re.Match[str], said: str = said, final: bool = final) -> str:
                return said + ("." if _keeps_period(match, final) else "")

            rules.append((pattern, replace))
    return rules


def _weekday_range_rule(language: Language) -> Rule:
    """ "Mo.-Fr." -> "Montag bis Freitag", "Mon-Fri" -> "Monday to Friday"; German also
    "Mo. bis Fr.", "Sa. u. So." (else "Fr." alone would be "Frau")."""
    days = dict(language.weekdays)
    joiners = dict(language.weekday_joiners)
    names = "|".join(sorted(days, key=len, reverse=True))
    words_between = "".join(
        rf"|\s?{re.escape(j)}\s?" if not j[0].isalpha() else rf"|\s+{re.escape(j)}\s+"
        for j in sorted(joiners, key=len, reverse=True)
    )
    pattern = re.compile(
        rf"(?<![\w.])(?P<a>{names})\.?(?P<join>\s?[-–]\s?{words_between})(?P<b>{names})(?![\w])\.?"
    )

    def replace(match: re.Match[str]) -> str:
        joiner = joiners.get(match["join"].strip(), language.range_word)
        words = f"{days[match['a']]} {joiner} {days[match['b']]}"
        return words + ("." if match.group(0).endswith(".") and _keeps_period(match, False) else "")

    return (pattern, replace)


def _weekday_after_rule(language: Language) -> Rule:
    """A short weekday after a preposition: "bis Fr." is Friday, not "Frau"."""
    days = dict(language.weekdays)
    names = "|".join(sorted(days, key=len, reverse=True))

    def replace(match: re.Match[str]) -> str:
        return match["pre"] + days[match["day"]] + ("." if _keeps_period(match, False) else "")

    return (
        re.compile(
            rf"(?P<pre>\b(?:bis|ab|am|vom|zum|seit|jeden|außer)\s+)(?P<day>{names})\.(?!\w)",
        ),
        replace,
    )


def _weekday_rule(language: Language) -> Rule:
    """A short weekday before a time or date: "Sa 10-14 Uhr" -> "Samstag 10-14 Uhr"."""
    days = dict(language.weekdays)
    names = "|".join(sorted(days, key=len, reverse=True))
    return (
        re.compile(
            rf"(?<![\w.])(?P<day>{names})\b\.?"
            r"(?=,?\s+\d{1,2}(?:[:.\-–/]|\s*(?:Uhr\b|[ap]\.?m\b)))",
        ),
        lambda m: days[m["day"]],
    )


def _decade_rule(language: Language) -> Rule:
    """English decades: "the 1990s" -> "the nineteen nineties", "the 80s" -> "the eighties"."""

    def replace(match: re.Match[str]) -> str:
        digits = match["n"]
        words = year(int(digits), language) if len(digits) == 4 else cardinal(int(digits), language)
        return _pad(words[:-1] + "ies" if words.endswith("y") else words + "s")

    return (re.compile(r"(?<![\w.,])'?(?P<n>(?:1[1-9]|20)?\d0)s\b"), replace)


def _street_rule() -> Rule:
    """German street names: "Hauptstr. 12" -> "Hauptstraße 12"."""
    return (re.compile(r"\b(\w+)str\.(?=\s?\d|\s*$)"), lambda m: m.group(1) + "straße")


def _spell_address(text: str, language: Language) -> str:
    """An URL or e-mail address read out: words stay words, punctuation gets its name."""
    text = re.sub(r"^https?://", "", text, flags=re.IGNORECASE).rstrip("/")
    pieces = re.split(r"([./@_:-])", text)
    spoken: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if piece in language.url_words:
            spoken.append(language.url_words[piece])
        elif piece.isdigit():
            spoken.append(digits_read(piece, language) if len(piece) > 4 else piece)
        elif piece.lower() == "www":
            spoken.append("w w w")
        else:
            spoken.append(piece.lower())
    return _pad(" ".join(spoken))


def _address_rules(language: Language) -> list[Rule]:
    return [
        (_EMAIL, lambda m: _spell_address(m.group(0), language)),
        (_URL, lambda m: _spell_address(m.group(0), language)),
    ]


def _phone_words(written: str, language: Language) -> str:
    """Digit by digit, with a pause (comma) where the writer put a space, slash or hyphen."""
    # "+49 (0)89": the bracketed trunk zero is not dialled from abroad, nor said.
    written = written.replace("(0)", " ").replace("\u00a0", " ")
    groups = [g for g in re.split(r"[\s/()-]+", written) if g]
    spoken = []
    for group in groups:
        prefix = language.plus + " " if group.startswith("+") else ""
        spoken.append(prefix + digits_read(group, language))
    return _pad(", ".join(spoken))


def _phone_rules(language: Language) -> list[Rule]:
    def replace(match: re.Match[str]) -> str:
        written = match.group(0)
        if sum(c.isdigit() for c in written) < PHONE_MIN_DIGITS:
            return written
        return _phone_words(written, language)

    rules: list[Rule] = [(_PHONE, replace)]
    if language.code == "en":
        rules.append((_US_PHONE, lambda m: _phone_words(m.group(0), language)))
    # Any other number written with a leading zero is a code, not a quantity: "0815", "007".
    rules.append(
        (
            re.compile(r"(?<![\w.,])0\d+(?![\d,.]\d)"),
            lambda m: _pad(digits_read(m.group(0), language)),
        )
    )
    return rules


def _month_pattern(language: Language) -> str:
    return "|".join(language.months)


def _date_day(match: re.Match[str], day: int, language: Language) -> str:
    """The day of a German date with its case ending, after "den" where a weekday and a
    preposition stand before it ("am Montag, den siebten")."""
    before = _text_before(match)
    if _WEEKDAY_BEFORE.search(before):
        return f"den {ordinal(day, language, 'n')}"
    return ordinal(day, language, _ordinal_ending(before))


def _german_date_rules(language: Language) -> list[Rule]:
    months = _month_pattern(language)

    def numeric(match: re.Match[str]) -> str:
        day, month, year_text = int(match["d"]), int(match["m"]), match["y"]
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return match.group(0)
        words = f"{_date_day(match, day, language)} {language.months[month - 1]}"
        if year_text:
            number = int(year_text) + (2000 if len(year_text) == 2 else 0)
            words += f" {year(number, language)}"
        return _pad(words)

    def named(match: re.Match[str]) -> str:
        words = f"{_date_day(match, int(match['d']), language)} {match['month']}"
        if match["y"]:
            words += f" {year(int(match['y']), language)}"
        return _pad(words)

    return [
        # "7.-11.12." and "7.12.-11.12.": the dash of a date range reads "bis".
        (
            re.compile(
                r"(?<![\w.,])(?P<a>\d{1,2}\.(?:\d{1,2}\.)?)\s?[-–]\s?(?=\d{1,2}\.\d{1,2}\.)"
            ),
            lambda m: f"{m['a']} bis ",
        ),
        (
            re.compile(r"(?<![\w.,])(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4}|\d{2})?(?![\d])"),
            numeric,
        ),
        (
            re.compile(
                rf"(?<![\w.,])(?P<d>\d{{1,2}})\.\s*(?P<month>{months})(?:\s+(?P<y>\d{{4}}))?"
            ),
            named,
        ),
    ]


def _english_date_rules(language: Language, region: str) -> list[Rule]:
    months = _month_pattern(language)
    day_first = region in {"en-gb", "en-ie", "en-au", "en-nz", "en-in"}

    def numeric(match: re.Match[str]) -> str:
        first, second = int(match["a"]), int(match["b"])
        day, month = (first, second) if day_first else (second, first)
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return match.group(0)
        year_words = year(_full_year(match["y"]), language)
        if day_first:
            return _pad(
                f"the {ordinal(day, language)} of {language.months[month - 1]} {year_words}"
            )
        return _pad(f"{language.months[month - 1]} {ordinal(day, language)}, {year_words}")

    def month_day(match: re.Match[str]) -> str:
        words = f"{match['month']} {ordinal(int(match['d']), language)}"
        if match["y"]:
            words += f", {year(int(match['y']), language)}"
        return _pad(words)

    def day_month(match: re.Match[str]) -> str:
        article = "" if re.search(r"\bthe\s+$", _text_before(match)) else "the "
        words = f"{article}{ordinal(int(match['d']), language)} of {match['month']}"
        if match["y"]:
            words += f" {year(int(match['y']), language)}"
        return _pad(words)

    return [
        (
            re.compile(r"(?<![\w/])(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})(?![\w/])"),
            numeric,
        ),
        (
            re.compile(
                rf"\b(?P<month>{months})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b"
                rf"(?:,?\s+(?P<y>\d{{4}})\b)?"
            ),
            month_day,
        ),
        (
            re.compile(
                rf"(?<![\w.,])(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{months})\b"
                rf"(?:,?\s+(?P<y>\d{{4}})\b)?"
            ),
            day_month,
        ),
    ]


def _full_year(written: str) -> int:
    return int(written) + (2000 if len(written) == 2 else 0)


def _iso_date_rule(language: Language) -> Rule:
    def replace(match: re.Match[str]) -> str:
        y, m, d = int(match["y"]), int(match["m"]), int(match["d"])
        if not (1 <= d <= 31 and 1 <= m <= 12):
            return match.group(0)
        month = language.months[m - 1]
        if language.code == "de":
            ending = _ordinal_ending(_text_before(match))
            return _pad(f"{ordinal(d, language, ending)} {month} {year(y, language)}")
        return _pad(f"{month} {ordinal(d, language)}, {year(y, language)}")

    return (
        re.compile(r"(?<![\w.-])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\w-])"),
        replace,
    )


def _time_rules(language: Language) -> list[Rule]:
    if language.code == "de":
        rules = _german_time_rules(language)
        dotted = [_dotted_time_range_rule(language, rules[1])]
    else:
        rules, dotted = _english_time_rules(language), []
    return [_time_range_rule(language, rules[-1]), *dotted, *rules]


def _time_range_rule(language: Language, clock: Rule) -> Rule:
    """ "9:00-18:00 Uhr" -> "neun Uhr bis achtzehn Uhr": each end read by the clock rule."""
    pattern, say = clock
    suffix = r"(?:\s*Uhr\b)?" if language.code == "de" else ""

    def replace(match: re.Match[str]) -> str:
        first = pattern.sub(say, match["a"]).strip()
        second = pattern.sub(say, match["b"]).strip()
        return _pad(f"{first} {language.range_word} {second}")

    return (
        re.compile(
            rf"(?<![\w.,:])(?P<a>\d{{1,2}}:\d{{2}})\s*[-–]\s*(?P<b>\d{{1,2}}:\d{{2}})(?![\d:]){suffix}"
        ),
        replace,
    )


def _german_time_rules(language: Language) -> list[Rule]:
    def say(match: re.Match[str]) -> str:
        hour, minute = int(match["h"]), int(match["min"] or 0)
        if hour > 24 or minute > 59:
            return match.group(0)
        words = f"{cardinal(hour, language)} Uhr"
        if minute:
            words += f" {cardinal(minute, language)}"
        return _pad(words)

    def say_range(match: re.Match[str]) -> str:
        first, second = int(match["a"]), int(match["b"])
        return _pad(f"{cardinal(first, language)} bis {cardinal(second, language)} Uhr")

    return [
        (
            re.compile(r"(?<![\w.,:])(?P<a>\d{1,2})\s*[-–]\s*(?P<b>\d{1,2})\s*Uhr\b"),
            say_range,
        ),
        (re.compile(r"(?<![\w.,:])(?P<h>\d{1,2})(?:[:.](?P<min>\d{2}))?\s*Uhr\b"), say),
        (re.compile(r"(?<![\w.,:])(?P<h>\d{1,2}):(?P<min>\d{2})(?![\d:])"), say),
    ]


def _english_time_rules(language: Language) -> list[Rule]:
    def say(match: re.Match[str]) -> str:
        hour, minute = int(match["h"]), int(match["min"] or 0)
        ampm = match.groupdict().get("ampm")
        if hour > 24 or minute > 59:
            return match.group(0)
        words = cardinal(hour, language)
        if minute:
            minute_words = cardinal(minute, language)
            words += f" oh {minute_words}" if minute < 10 else f" {minute_words}"
        elif not ampm:
            words += " hundred" if hour > 12 else " o'clock"
        if ampm:
            words += " " + " ".join(ampm.replace(".", "").lower())
            if ampm.endswith(".") and _keeps_period(match, True):
                words += "."
        return _pad(words)

    return [
        (
            re.compile(
                r"(?<![\w.,:])(?P<h>\d{1,2})(?::(?P<min>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?(?![a-z]))",
                re.IGNORECASE,
            ),
            say,
        ),
        (re.compile(r"(?<![\w.,:])(?P<h>\d{1,2}):(?P<min>\d{2})(?![\d:])"), say),
    ]


def _money_rules(language: Language) -> list[Rule]:
    number = _DE_NUMBER if language.code == "de" else _EN_NUMBER
    codes = sorted(language.currencies, key=len, reverse=True)
    symbol = "|".join(re.escape(code) for code in codes)
    scale = r"(?:\s*(?P<scale>Mio\.|Mrd\.|Millionen|Milliarden|Tsd\.|million|billion|thousand|"
    scale += r"trillion|bn|m(?![a-z]))\b\.?)?"

    def say(match: re.Match[str]) -> str:
        main, sub = language.currencies[match["cur"]]
        written = match["num"]
        cents_dash = bool(match.groupdict().get("dash"))
        if match["scale"]:
            big = _scale_word(match["scale"], language)
            return _pad(f"{number_words(written, language)} {big} {main.plural}")
        whole, decimals = _split_number(written, language)
        if cents_dash:
            decimals = None
        cents = int((decimals or "0").ljust(2, "0")[:2]) if decimals else 0
        if whole == 0 and cents:
            return _pad(f"{_count_word(cents, sub, language)} {_unit(cents, sub)}")
        words = f"{_count_word(whole, main, language)} {_unit(whole, main)}"
        if cents:
            if language.code == "de":
                words += f" {cardinal(cents, language)}"
            else:
                words += f" and {cardinal(cents, language)} {_unit(cents, sub)}"
        return _pad(words)

    return [
        (
            re.compile(
                rf"(?<![\w.,])(?P<num>{number})(?P<dash>,[-–])?{scale}\s*(?P<cur>{symbol})"
                r"(?![\w])"
            ),
            say,
        ),
        (
            re.compile(rf"(?<![\w])(?P<cur>{symbol})\s*(?P<num>{number})(?P<dash>,[-–])?{scale}"),
            say,
        ),
    ]


def _scale_word(written: str, language: Language) -> str:
    table = {
        "mio.": "Millionen",
        "mrd.": "Milliarden",
        "tsd.": "Tausend",
        "bn": "billion",
        "m": "million",
    }
    return table.get(written.lower(), written)


def _unit(count: int, unit: Unit) -> str:
    return unit.singular if count == 1 else unit.plural


def _percent_rule(language: Language) -> Rule:
    number = _DE_NUMBER if language.code == "de" else _EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        sign = f"{language.minus} " if match["sign"] else ""
        return _pad(f"{sign}{number_words(match['num'], language)} {language.percent}")

    return (
        re.compile(rf"(?<![\w.,])(?P<sign>[-−])?(?P<num>{number})\s?%"),
        replace,
    )


def _unit_rule(language: Language) -> Rule:
    number = _DE_NUMBER if language.code == "de" else _EN_NUMBER
    symbols = sorted(language.units, key=len, reverse=True)
    alternatives = "|".join(re.escape(s) for s in symbols)

    def replace(match: re.Match[str]) -> str:
        unit = language.units[match["unit"]]
        written = match["to"] or match["num"]
        sign = f"{language.minus} " if match["sign"] else ""
        whole, decimals = _split_number(written, language)
        if decimals is None:
            words = f"{_count_word(whole, unit, language)} {_unit(whole, unit)}"
        else:
            words = f"{number_words(written, language)} {unit.plural}"
        if match["to"]:
            words = f"{number_words(match['num'], language)} {language.range_word} {words}"
        if match["unit"].endswith(".") and _keeps_period(match, language.code == "en"):
            words += "."
        return _pad(sign + words)

    return (
        re.compile(
            rf"(?<![\w.,])(?P<sign>[-−])?(?P<num>{number})(?:\s?[-–]\s?(?P<to>{number}))?"
            rf"\s?(?P<unit>{alternatives})"
            r"(?![\w²³])"
        ),
        replace,
    )


def _ordinal_rules(language: Language) -> list[Rule]:
    if language.code == "en":
        return [
            (
                re.compile(r"(?<![\w.,])(\d+)(?:st|nd|rd|th)\b"),
                lambda m: _pad(ordinal(int(m.group(1)), language)),
            )
        ]

    def german(match: re.Match[str]) -> str:
        before = _text_before(match)
        if _DATIVE_BEFORE.search(before) or _NOMINATIVE_BEFORE.search(before):
            ending = _ordinal_ending(before)
        elif match["noun"] in ORDINAL_NOUNS:
            ending = ORDINAL_NOUNS[match["noun"]]
        else:  # most likely a sentence that ends with a number
            return match.group(0)
        return _pad(ordinal(int(match["n"]), language, ending))

    # "der 3. Platz", "zum 2. Mal", "3. Stock": a number with a dot before a word.
    return [(re.compile(r"(?<![\w.,])(?P<n>\d{1,4})\.(?=\s+(?P<noun>\w+))"), german)]


def _year_rule(language: Language) -> Rule:
    before = _YEAR_BEFORE[language.code]

    def replace(match: re.Match[str]) -> str:
        if not before.search(_text_before(match)):
            return match.group(0)
        return _pad(year(int(match.group(0)), language))

    # German years from 2000 read like any number; English ones do not ("twenty twenty-six").
    first = "1[1-9]" if language.code == "de" else "(?:1[1-9]|20)"
    return (re.compile(rf"(?<![\w.,]){first}\d\d(?![\w.,]\d|\d)"), replace)


def _range_rule(language: Language) -> Rule:
    number = _DE_NUMBER if language.code == "de" else _EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        first = number_words(match["a"], language)
        second = number_words(match["b"], language)
        return _pad(f"{first} {language.range_word} {second}")

    return (
        re.compile(rf"(?<![\w.,-])(?P<a>{number})\s?[-–]\s?(?P<b>{number})(?![\w.,-]\d|\d)"),
        replace,
    )


def _number_rule(language: Language) -> Rule:
    number = _DE_NUMBER if language.code == "de" else _EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        noun = _GERMAN_NOUN_AFTER.match(match.string, match.end())
        if language.code == "de" and match["num"] == "1" and noun:
            return "eine" if noun.group(1).endswith(FEMININE_ENDINGS) else "ein"
        sign = ""
        if match["sign"]:
            sign = language.plus if match["sign"] == "+" else language.minus
            sign += " "
        return _pad(sign + number_words(match["num"], language))

    # A sign counts only where a word could not end: "-5" at the start or after a space.
    return (re.compile(rf"(?P<sign>(?:(?<=\s)|^)[-−+](?=\d))?(?P<num>{number})"), replace)


def _long_digits_rule(language: Language) -> Rule:
    """Digit runs too long to be a quantity (IDs, codes, garbage) are read digit by digit first,
    so no later rule turns thousands of digits into one number."""
    return (
        re.compile(rf"\d{{{MAX_CARDINAL_DIGITS + 1},}}"),
        lambda m: _pad(digits_read(m.group(0), language)),
    )


def _ratio_rule(language: Language) -> Rule:
    """Scores and ratios left after the time rules: "2:1" -> "zwei zu eins"."""
    return (
        re.compile(r"(?<![\w.,:])(\d+):(\d+)(?![\d:])"),
        lambda m: _pad(
            f"{cardinal(int(m.group(1)), language)} {language.ratio_word} "
            f"{cardinal(int(m.group(2)), language)}"
        ),
    )


def _symbol_rule(language: Language) -> Rule:
    table = dict(language.symbols)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(table, key=len, reverse=True)))
    return (pattern, lambda m: _pad(table[m.group(0)]))


def _times_rule(language: Language) -> Rule:
    word = "mal" if language.code == "de" else "times"
    return (re.compile(r"(?<=\d)\s?[x×]\s?(?=\d)"), lambda m: _pad(word))


# --- German forms, letters and signs: codes, postcodes, rooms, sections, house numbers ---------

_SPLIT_CODE = re.compile(r"[\s/-]+")
_CODE_PIECES = re.compile(r"\d+|[^\d]+")


def _spell_code(code: str, language: Language) -> str:
    """A code read out: letters one by one, digits one by one, a pause (comma) where the
    writer put a dash, slash or space: "RE-2026-0142" -> "R E, zwei null zwei sechs, ..."."""
    spoken = []
    for group in (g for g in _SPLIT_CODE.split(code) if g):
        pieces = _CODE_PIECES.findall(group)
        words = [digits_read(p, language) if p.isdigit() else " ".join(p) for p in pieces]
        spoken.append(" ".join(words))
    return ", ".join(spoken)


_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?(?![\w])")
IBAN_GROUP = 4
"""An IBAN is read in the groups of four it is printed in, even when written without spaces."""


def _iban_rule(language: Language) -> Rule:
    """ "DE89 3704 0044 ..." -> "D E acht neun, drei sieben null vier, ..."."""

    def replace(match: re.Match[str]) -> str:
        compact = match.group(0).replace(" ", "")
        groups = [compact[i : i + IBAN_GROUP] for i in range(0, len(compact), IBAN_GROUP)]
        return _pad(_spell_code(" ".join(groups), language))

    return (_IBAN, replace)


_TOWN_AFTER = (
    r"(?![ ](?:Euro|Dollar|Franken|Pfund|Cent)\b)"
    r"(?=[ ][A-ZÄÖÜ][\w]{0,40}(?:[ ]?$|[ ]?[,;.()\n-]"
    r"|[ ]+(?:am|an der|im|ob der|bei|in der)[ ]+[A-ZÄÖÜ]|[ ]+[A-ZÄÖÜ]))"
)
"""A town name after a postcode: a capital word ending the line or the text, or followed by
punctuation, "am Main", "an der Oder" or a second capital word, and not a currency.
"10000 Menschen demonstrierten" is a count (the verb after it is lower case)."""


def _postcode_rules(language: Language) -> list[Rule]:
    """Postcodes are read digit by digit ("10115" -> "eins null eins eins fünf"): after "PLZ",
    after a country prefix ("D-80331", which is not said), or five digits at the start of an
    address line or after a comma, before a town name. Written counts this long carry a
    thousands separator in German ("10.000"), so the bare five digits mark a postcode."""

    def digits(match: re.Match[str]) -> str:
        return match["pre"] + _pad(digits_read(match["code"], language))

    return [
        (
            re.compile(r"(?P<pre>\b(?:PLZ|Postleitzahl):?\s?)(?P<code>\d{5})(?!\d)"),
            digits,
        ),
        (
            re.compile(
                r"(?<![\w-])(?:D|DE)-(?P<pre>)(?P<code>\d{5})(?!\d)|"
                r"(?<![\w-])(?:A|AT|CH)-(?P<pre4>)(?P<code4>\d{4})(?!\d)"
            ),
            lambda m: _pad(digits_read(m["code"] or m["code4"], language)),
        ),
        (
            re.compile(rf"(?m)(?:^|(?<=[,;] )|(?<=[,;]))(?P<pre>)(?P<code>\d{{5}}){_TOWN_AFTER}"),
            digits,
        ),
    ]


def _number_suffix_rule() -> Rule:
    """ "Kundennr." and "Rechnungs-Nr." -> "Kundennummer", "Rechnungsnummer"."""
    return (
        re.compile(r"(?<![\w.-])(?P<stem>[^\W\d]{2,40})(?:nr|-Nr)\."),
        lambda m: f"{m['stem']}nummer",
    )


def _following_pages_rule() -> Rule:
    """ "S. 14 ff." -> "Seite vierzehn folgende" ("f." elsewhere is "für")."""
    return (
        re.compile(r"(?<=\d) ?ff?\.(?!\w)"),
        lambda m: " folgende" + ("." if _keeps_period(m, False) else ""),
    )


def _word_abbreviation_rule(language: Language) -> Rule:
    """Abbreviations written without a dot, as whole words: "KW 49", "im 2. OG"; not the
    company form "UG (haftungsbeschränkt)"."""
    table = dict(language.words)
    names = "|".join(sorted(table, key=len, reverse=True))
    return (
        re.compile(rf"(?<![\w.-])(?P<word>{names})(?![A-Za-zÄÖÜäöüß-])(?!\s?\(haftungsbeschränkt)"),
        lambda m: table[m["word"]],
    )


IDENTIFIER_MIN_DIGITS = 5
"""After "Nummer", a number this long (or any code mixing letters and digits) is an ID."""


def _identifier_rule(language: Language) -> Rule:
    """ "Kundennummer 123456" -> "... eins zwei drei vier fünf sechs"; "Nummer 4711" stays a
    number. Phone numbers (starting with 0 or +) are left to the phone rule."""

    def replace(match: re.Match[str]) -> str:
        code = match["id"]
        digit_count = sum(c.isdigit() for c in code)
        has_letters = any(c.isalpha() for c in code)
        if not match["noun"].endswith(IDENTIFIER_NOUNS) or not (
            digit_count >= IDENTIFIER_MIN_DIGITS or (has_letters and digit_count)
        ):
            return match.group(0)
        return f"{match['noun']}{match['sep']}{_spell_code(code, language)}"

    return (
        re.compile(
            r"(?<![\w-])(?P<noun>[\w-]{1,60})(?P<sep>:?\s+)(?P<id>[1-9A-Z][A-Z0-9/-]{3,40})"
            r"(?![\w/-])"
        ),
        replace,
    )


_DOTTED = r"\d{1,3}(?:\.\d{1,3}){1,4}"


def _dotted_groups(written: str, language: Language) -> list[str]:
    """Each group of "2.014": leading zeros as "null", the rest as a number ("null vierzehn")."""
    words = []
    for group in written.split("."):
        stripped = group.lstrip("0")
        zeros = [language.digits[0]] * (len(group) - len(stripped))
        words.append(" ".join([*zeros, *([cardinal(int(stripped), language)] if stripped else [])]))
    return words


def _is_thousands(written: str) -> bool:
    """ "18.432" and "1.000.000" are German thousands, not outline numbers."""
    return "." in written and all(len(group) == 3 for group in written.split(".")[1:])


def _outline(written: str, language: Language) -> str:
    return f" {language.point_word} ".join(_dotted_groups(written, language))


def _room_and_section_rule(language: Language) -> Rule:
    """ "Raum 2.14" -> "Raum zwei vierzehn" (floor and room, as said on the corridor);
    "Abschnitt 3.2.1" -> "Abschnitt drei Punkt zwei Punkt eins"; "Kapitel 4.3." is a section,
    not a date."""

    def replace(match: re.Match[str]) -> str:
        noun, written, wing = match["noun"], match["num"], match["wing"] or ""
        dotted = "." in written or wing.endswith(".")
        letter = wing.rstrip(". ")[:1]
        if noun.endswith(ROOM_NOUNS) and dotted:
            spoken = " ".join([*letter, *_dotted_groups(written, language)])
        elif noun in SECTION_NOUNS and dotted and not _is_thousands(written):
            spoken = " ".join([*letter, _outline(written, language)])
        else:
            return match.group(0)
        return f"{noun}{match['gap']}{spoken}"

    # A wing or building letter may come first: "Raum B 2.14", "Raum E.07".
    return (
        re.compile(
            r"(?<![\w.])(?P<noun>[^\W\d]{1,40}|§)(?P<gap>\s+)(?P<wing>[A-Z][ .]?)?"
            r"(?P<num>\d{1,3}(?:\.\d{1,3}){0,4})(?!\d|\.\d|\s?Uhr\b)"
        ),
        replace,
    )


def _dotted_number_rule(language: Language) -> Rule:
    """Numbers with dots left after dates, times and thousands: outline and version numbers
    ("3.2.1 Einleitung", "Version 2.0.1", "1.5"), read with "Punkt"."""

    def replace(match: re.Match[str]) -> str:
        written = match.group(0)
        return written if _is_thousands(written) else _pad(_outline(written, language))

    return (re.compile(rf"(?<![\w.,]){_DOTTED}(?![\w]|[.,]\d)"), replace)


def _house_number_rules(language: Language) -> list[Rule]:
    """ "42/B" -> "zweiundvierzig B"; after a street "42/1" -> "zweiundvierzig Strich eins";
    a file number "345/25" -> "dreihundertfünfundvierzig Strich fünfundzwanzig"."""

    def street(match: re.Match[str]) -> str:
        if not match["street"].endswith(STREET_ENDINGS):
            return match.group(0)
        return (
            f"{match['street']} {cardinal(int(match['n']), language)} {language.slash_word} "
            f"{cardinal(int(match['m']), language)}"
        )

    return [
        (
            re.compile(
                r"(?<![\w.-])(?P<street>[^\W\d]{1,40}) (?P<n>\d{1,4}) ?/ ?(?P<m>\d{1,3})(?![\w/.])"
            ),
            street,
        ),
        (
            re.compile(r"(?<![\w.,/])(?P<n>\d{1,4}) ?/ ?(?P<letter>[A-Za-z])(?![\w/])"),
            lambda m: _pad(f"{cardinal(int(m['n']), language)} {m['letter']}"),
        ),
        # File numbers with a year: "345/25", "1234/2026" ("Strich"); "1/2" stays a fraction.
        (
            re.compile(r"(?<![\w.,/])(?P<n>[1-9]\d{2,5})/(?P<m>\d{2}|\d{4})(?![\w/]|[.,]\d)"),
            lambda m: _pad(
                f"{cardinal(int(m['n']), language)} {language.slash_word} "
                f"{cardinal(int(m['m']), language)}"
            ),
        ),
    ]


def _per_rule(language: Language) -> Rule:
    """ "3,99 €/kg" -> "3,99 € pro Kilogramm", "850 €/Monat" -> "850 € pro Monat"."""
    symbol = "|".join(re.escape(c) for c in sorted(language.currencies, key=len, reverse=True))

    def replace(match: re.Match[str]) -> str:
        per = match["per"]
        unit = language.units.get(per) or language.units.get(per.rstrip("."))
        said = per
        if unit is not None:
            kept = per.endswith(".") and _keeps_period(match, False)
            said = unit.singular + ("." if kept else "")
        return f"{match['cur']} {language.per_word} {said}"

    return (
        re.compile(rf"(?P<cur>{symbol}) ?/ ?(?P<per>[^\W\d]{{1,20}}[²³]?\.?)"),
        replace,
    )


def _dotted_time_range_rule(language: Language, clock: Rule) -> Rule:
    """ "8.30-12.00 Uhr", "von 8.30 bis 12 Uhr" -> "acht Uhr dreißig bis zwölf Uhr"."""
    pattern, say = clock

    def replace(match: re.Match[str]) -> str:
        first = pattern.sub(say, match["a"] + " Uhr").strip()
        second = pattern.sub(say, match["b"] + " Uhr").strip()
        return _pad(f"{first} {language.range_word} {second}")

    return (
        re.compile(
            r"(?<![\w.,:])(?P<a>\d{1,2}[.:]\d{2})\s*(?:[-–]|bis)\s*"
            r"(?P<b>\d{1,2}(?:[.:]\d{2})?)\s*Uhr\b"
        ),
        replace,
    )


@lru_cache(maxsize=16)
def _compiled_rules(code: str, region: str) -> tuple[Rule, ...]:
    """The rules of a language and region, compiled once per process."""
    return tuple(_rules(LANGUAGES[code], region))


def _rules(language: Language, region: str) -> list[Rule]:
    """Every rule for `language`, in the order they apply."""
    german = language.code == "de"
    dates = _german_date_rules(language) if german else _english_date_rules(language, region)
    return [
        *([_iban_rule(language)] if german else []),
        _long_digits_rule(language),
        *_address_rules(language),
        *(_postcode_rules(language) if german else []),
        _weekday_range_rule(language),
        _weekday_rule(language),
        *([_weekday_after_rule(language)] if german else []),
        *([_street_rule(), _number_suffix_rule(), _following_pages_rule()] if german else []),
        *_abbreviation_rules(language),
        *([_word_abbreviation_rule(language), _identifier_rule(language)] if german else []),
        *([_room_and_section_rule(language), *_house_number_rules(language)] if german else []),
        _iso_date_rule(language),
        *dates,
        *_time_rules(language),
        *_phone_rules(language),
        *([_per_rule(language)] if german else []),
        *_money_rules(language),
        _percent_rule(language),
        _times_rule(language),
        *([_decade_rule(language)] if language.code == "en" else []),
        _unit_rule(language),
        *([_dotted_number_rule(language)] if german else []),
        *_ordinal_rules(language),
        _year_rule(language),
        _range_rule(language),
        _ratio_rule(language),
        _number_rule(language),
        _symbol_rule(language),
    ]

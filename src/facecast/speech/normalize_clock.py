"""Normalisation rules for dates, times and weekdays (German and English): "7.12.",
"Mo., 7.12.", "14:30-16 Uhr", "Dec 7, 2026", ISO dates. Applied in the order `normalize.py`
sets."""

from __future__ import annotations

import re

from facecast.speech.normalize_tables import (
    Language,
)
from facecast.speech.normalize_words import (
    WEEKDAY_BEFORE,
    Rule,
    cardinal,
    keeps_period,
    ordinal,
    ordinal_ending,
    pad,
    text_before,
    year,
)


def weekday_range_rule(language: Language) -> Rule:
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
        return words + ("." if match.group(0).endswith(".") and keeps_period(match, False) else "")

    return (pattern, replace)


def weekday_after_rule(language: Language) -> Rule:
    """A short weekday after a preposition: "bis Fr." is Friday, not "Frau"."""
    days = dict(language.weekdays)
    names = "|".join(sorted(days, key=len, reverse=True))

    def replace(match: re.Match[str]) -> str:
        return match["pre"] + days[match["day"]] + ("." if keeps_period(match, False) else "")

    return (
        re.compile(
            rf"(?P<pre>\b(?:bis|ab|am|vom|zum|seit|jeden|außer)\s+)(?P<day>{names})\.(?!\w)",
        ),
        replace,
    )


def weekday_rule(language: Language) -> Rule:
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


def _month_pattern(language: Language) -> str:
    return "|".join(language.months)


def _date_day(match: re.Match[str], day: int, language: Language) -> str:
    """The day of a German date with its case ending, after "den" where a weekday and a
    preposition stand before it ("am Montag, den siebten")."""
    before = text_before(match)
    if WEEKDAY_BEFORE.search(before):
        return f"den {ordinal(day, language, 'n')}"
    return ordinal(day, language, ordinal_ending(before))


def german_date_rules(language: Language) -> list[Rule]:
    months = _month_pattern(language)

    def numeric(match: re.Match[str]) -> str:
        day, month, year_text = int(match["d"]), int(match["m"]), match["y"]
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return match.group(0)
        words = f"{_date_day(match, day, language)} {language.months[month - 1]}"
        if year_text:
            number = int(year_text) + (2000 if len(year_text) == 2 else 0)
            words += f" {year(number, language)}"
        return pad(words)

    def named(match: re.Match[str]) -> str:
        words = f"{_date_day(match, int(match['d']), language)} {match['month']}"
        if match["y"]:
            words += f" {year(int(match['y']), language)}"
        return pad(words)

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


def english_date_rules(language: Language, region: str) -> list[Rule]:
    months = _month_pattern(language)
    day_first = region in {"en-gb", "en-ie", "en-au", "en-nz", "en-in"}

    def numeric(match: re.Match[str]) -> str:
        first, second = int(match["a"]), int(match["b"])
        day, month = (first, second) if day_first else (second, first)
        if not (1 <= day <= 31 and 1 <= month <= 12):
            return match.group(0)
        year_words = year(_full_year(match["y"]), language)
        if day_first:
            return pad(f"the {ordinal(day, language)} of {language.months[month - 1]} {year_words}")
        return pad(f"{language.months[month - 1]} {ordinal(day, language)}, {year_words}")

    def month_day(match: re.Match[str]) -> str:
        words = f"{match['month']} {ordinal(int(match['d']), language)}"
        if match["y"]:
            words += f", {year(int(match['y']), language)}"
        return pad(words)

    def day_month(match: re.Match[str]) -> str:
        article = "" if re.search(r"\bthe\s+$", text_before(match)) else "the "
        words = f"{article}{ordinal(int(match['d']), language)} of {match['month']}"
        if match["y"]:
            words += f" {year(int(match['y']), language)}"
        return pad(words)

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


def iso_date_rule(language: Language) -> Rule:
    def replace(match: re.Match[str]) -> str:
        y, m, d = int(match["y"]), int(match["m"]), int(match["d"])
        if not (1 <= d <= 31 and 1 <= m <= 12):
            return match.group(0)
        month = language.months[m - 1]
        if language.code == "de":
            ending = ordinal_ending(text_before(match))
            return pad(f"{ordinal(d, language, ending)} {month} {year(y, language)}")
        return pad(f"{month} {ordinal(d, language)}, {year(y, language)}")

    return (
        re.compile(r"(?<![\w.-])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\w-])"),
        replace,
    )


def time_rules(language: Language) -> list[Rule]:
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
        return pad(f"{first} {language.range_word} {second}")

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
        return pad(words)

    def say_range(match: re.Match[str]) -> str:
        first, second = int(match["a"]), int(match["b"])
        return pad(f"{cardinal(first, language)} bis {cardinal(second, language)} Uhr")

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
            if ampm.endswith(".") and keeps_period(match, True):
                words += "."
        return pad(words)

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


def _dotted_time_range_rule(language: Language, clock: Rule) -> Rule:
    """ "8.30-12.00 Uhr", "von 8.30 bis 12 Uhr" -> "acht Uhr dreißig bis zwölf Uhr"."""
    pattern, say = clock

    def replace(match: re.Match[str]) -> str:
        first = pattern.sub(say, match["a"] + " Uhr").strip()
        second = pattern.sub(say, match["b"] + " Uhr").strip()
        return pad(f"{first} {language.range_word} {second}")

    return (
        re.compile(
            r"(?<![\w.,:])(?P<a>\d{1,2}[.:]\d{2})\s*(?:[-–]|bis)\s*"
            r"(?P<b>\d{1,2}(?:[.:]\d{2})?)\s*Uhr\b"
        ),
        replace,
    )

"""Text normalisation for German and English: written forms -> words a synthesiser reads well.

`normalize(text, lang)` runs before every backend (see `pipeline.synthesize`). Rules are tables of
regular expressions applied in a fixed order, most specific first: URLs and e-mail addresses,
abbreviations, phone numbers, dates, times, money, percentages, units, ordinals, then plain
numbers and the symbols left over. German adds the shapes of forms, letters and signs: IBANs,
postcodes, IDs after "Nummer", room and section numbers, house numbers, "€/kg". This module
holds the entry point, the order of the rules and the general ones; dates, times and weekdays
are in `normalize_clock.py`, the German form shapes in `normalize_forms.py`, number words and
the shared look-behind in `normalize_words.py`. The words come from the per-language tables in
`normalize_tables.py`, numbers through `num2words`. Languages
other than German and English pass through unchanged. Patterns are bounded where they could
backtrack, so hostile input stays fast (bench/speech_limits.py measures it).
"""

from __future__ import annotations

import re
from functools import lru_cache

from facecast.speech.normalize_clock import (
    english_date_rules,
    german_date_rules,
    iso_date_rule,
    time_rules,
    weekday_after_rule,
    weekday_range_rule,
    weekday_rule,
)
from facecast.speech.normalize_forms import (
    dotted_number_rule,
    following_pages_rule,
    house_number_rules,
    iban_rule,
    identifier_rule,
    number_suffix_rule,
    per_rule,
    postcode_rules,
    room_and_section_rule,
    street_rule,
    word_abbreviation_rule,
)
from facecast.speech.normalize_tables import (
    FEMININE_ENDINGS,
    LANGUAGES,
    ORDINAL_NOUNS,
    Language,
    Unit,
)
from facecast.speech.normalize_words import (
    DATIVE_BEFORE,
    DE_NUMBER,
    EN_NUMBER,
    GERMAN_NOUN_AFTER,
    MAX_CARDINAL_DIGITS,
    NOMINATIVE_BEFORE,
    YEAR_BEFORE,
    Rule,
    cardinal,
    count_word,
    digits_read,
    keeps_period,
    number_words,
    ordinal,
    ordinal_ending,
    pad,
    split_number,
    text_before,
    year,
)

__all__ = ["LANGUAGES", "normalize"]


PHONE_MIN_DIGITS = 6
"""A digit group this long starting with 0 or + reads like a phone number."""


# --- shared pattern pieces --------------------------------------------------------------------

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


# --- rules ------------------------------------------------------------------------------------


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
                return said + ("." if keeps_period(match, final) else "")

            rules.append((pattern, replace))
    return rules


def _decade_rule(language: Language) -> Rule:
    """English decades: "the 1990s" -> "the nineteen nineties", "the 80s" -> "the eighties"."""

    def replace(match: re.Match[str]) -> str:
        digits = match["n"]
        words = year(int(digits), language) if len(digits) == 4 else cardinal(int(digits), language)
        return pad(words[:-1] + "ies" if words.endswith("y") else words + "s")

    return (re.compile(r"(?<![\w.,])'?(?P<n>(?:1[1-9]|20)?\d0)s\b"), replace)


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
    return pad(" ".join(spoken))


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
    return pad(", ".join(spoken))


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
            lambda m: pad(digits_read(m.group(0), language)),
        )
    )
    return rules


def _money_rules(language: Language) -> list[Rule]:
    number = DE_NUMBER if language.code == "de" else EN_NUMBER
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
            return pad(f"{number_words(written, language)} {big} {main.plural}")
        whole, decimals = split_number(written, language)
        if cents_dash:
            decimals = None
        cents = int((decimals or "0").ljust(2, "0")[:2]) if decimals else 0
        if whole == 0 and cents:
            return pad(f"{count_word(cents, sub, language)} {_unit(cents, sub)}")
        words = f"{count_word(whole, main, language)} {_unit(whole, main)}"
        if cents:
            if language.code == "de":
                words += f" {cardinal(cents, language)}"
            else:
                words += f" and {cardinal(cents, language)} {_unit(cents, sub)}"
        return pad(words)

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
    number = DE_NUMBER if language.code == "de" else EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        sign = f"{language.minus} " if match["sign"] else ""
        return pad(f"{sign}{number_words(match['num'], language)} {language.percent}")

    return (
        re.compile(rf"(?<![\w.,])(?P<sign>[-−])?(?P<num>{number})\s?%"),
        replace,
    )


def _unit_rule(language: Language) -> Rule:
    number = DE_NUMBER if language.code == "de" else EN_NUMBER
    symbols = sorted(language.units, key=len, reverse=True)
    alternatives = "|".join(re.escape(s) for s in symbols)

    def replace(match: re.Match[str]) -> str:
        unit = language.units[match["unit"]]
        written = match["to"] or match["num"]
        sign = f"{language.minus} " if match["sign"] else ""
        whole, decimals = split_number(written, language)
        if decimals is None:
            words = f"{count_word(whole, unit, language)} {_unit(whole, unit)}"
        else:
            words = f"{number_words(written, language)} {unit.plural}"
        if match["to"]:
            words = f"{number_words(match['num'], language)} {language.range_word} {words}"
        if match["unit"].endswith(".") and keeps_period(match, language.code == "en"):
            words += "."
        return pad(sign + words)

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
                lambda m: pad(ordinal(int(m.group(1)), language)),
            )
        ]

    def german(match: re.Match[str]) -> str:
        before = text_before(match)
        if DATIVE_BEFORE.search(before) or NOMINATIVE_BEFORE.search(before):
            ending = ordinal_ending(before)
        elif match["noun"] in ORDINAL_NOUNS:
            ending = ORDINAL_NOUNS[match["noun"]]
        else:  # most likely a sentence that ends with a number
            return match.group(0)
        return pad(ordinal(int(match["n"]), language, ending))

    # "der 3. Platz", "zum 2. Mal", "3. Stock": a number with a dot before a word.
    return [(re.compile(r"(?<![\w.,])(?P<n>\d{1,4})\.(?=\s+(?P<noun>\w+))"), german)]


def _year_rule(language: Language) -> Rule:
    before = YEAR_BEFORE[language.code]

    def replace(match: re.Match[str]) -> str:
        if not before.search(text_before(match)):
            return match.group(0)
        return pad(year(int(match.group(0)), language))

    # German years from 2000 read like any number; English ones do not ("twenty twenty-six").
    first = "1[1-9]" if language.code == "de" else "(?:1[1-9]|20)"
    return (re.compile(rf"(?<![\w.,]){first}\d\d(?![\w.,]\d|\d)"), replace)


def _range_rule(language: Language) -> Rule:
    number = DE_NUMBER if language.code == "de" else EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        first = number_words(match["a"], language)
        second = number_words(match["b"], language)
        return pad(f"{first} {language.range_word} {second}")

    return (
        re.compile(rf"(?<![\w.,-])(?P<a>{number})\s?[-–]\s?(?P<b>{number})(?![\w.,-]\d|\d)"),
        replace,
    )


def _number_rule(language: Language) -> Rule:
    number = DE_NUMBER if language.code == "de" else EN_NUMBER

    def replace(match: re.Match[str]) -> str:
        noun = GERMAN_NOUN_AFTER.match(match.string, match.end())
        if language.code == "de" and match["num"] == "1" and noun:
            return "eine" if noun.group(1).endswith(FEMININE_ENDINGS) else "ein"
        sign = ""
        if match["sign"]:
            sign = language.plus if match["sign"] == "+" else language.minus
            sign += " "
        return pad(sign + number_words(match["num"], language))

    # A sign counts only where a word could not end: "-5" at the start or after a space.
    return (re.compile(rf"(?P<sign>(?:(?<=\s)|^)[-−+](?=\d))?(?P<num>{number})"), replace)


def _long_digits_rule(language: Language) -> Rule:
    """Digit runs too long to be a quantity (IDs, codes, garbage) are read digit by digit first,
    so no later rule turns thousands of digits into one number."""
    return (
        re.compile(rf"\d{{{MAX_CARDINAL_DIGITS + 1},}}"),
        lambda m: pad(digits_read(m.group(0), language)),
    )


def _ratio_rule(language: Language) -> Rule:
    """Scores and ratios left after the time rules: "2:1" -> "zwei zu eins"."""
    return (
        re.compile(r"(?<![\w.,:])(\d+):(\d+)(?![\d:])"),
        lambda m: pad(
            f"{cardinal(int(m.group(1)), language)} {language.ratio_word} "
            f"{cardinal(int(m.group(2)), language)}"
        ),
    )


def _symbol_rule(language: Language) -> Rule:
    table = dict(language.symbols)
    pattern = re.compile("|".join(re.escape(s) for s in sorted(table, key=len, reverse=True)))
    return (pattern, lambda m: pad(table[m.group(0)]))


def _times_rule(language: Language) -> Rule:
    word = "mal" if language.code == "de" else "times"
    return (re.compile(r"(?<=\d)\s?[x×]\s?(?=\d)"), lambda m: pad(word))


# --- German forms, letters and signs: codes, postcodes, rooms, sections, house numbers ---------


@lru_cache(maxsize=16)
def _compiled_rules(code: str, region: str) -> tuple[Rule, ...]:
    """The rules of a language and region, compiled once per process."""
    return tuple(_rules(LANGUAGES[code], region))


def _rules(language: Language, region: str) -> list[Rule]:
    """Every rule for `language`, in the order they apply."""
    german = language.code == "de"
    dates = german_date_rules(language) if german else english_date_rules(language, region)
    return [
        *([iban_rule(language)] if german else []),
        _long_digits_rule(language),
        *_address_rules(language),
        *(postcode_rules(language) if german else []),
        weekday_range_rule(language),
        weekday_rule(language),
        *([weekday_after_rule(language)] if german else []),
        *([street_rule(), number_suffix_rule(), following_pages_rule()] if german else []),
        *_abbreviation_rules(language),
        *([word_abbreviation_rule(language), identifier_rule(language)] if german else []),
        *([room_and_section_rule(language), *house_number_rules(language)] if german else []),
        iso_date_rule(language),
        *dates,
        *time_rules(language),
        *_phone_rules(language),
        *([per_rule(language)] if german else []),
        *_money_rules(language),
        _percent_rule(language),
        _times_rule(language),
        *([_decade_rule(language)] if language.code == "en" else []),
        _unit_rule(language),
        *([dotted_number_rule(language)] if german else []),
        *_ordinal_rules(language),
        _year_rule(language),
        _range_rule(language),
        _ratio_rule(language),
        _number_rule(language),
        _symbol_rule(language),
    ]

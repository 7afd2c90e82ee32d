"""Normalisation rules for the shapes of German forms, letters and signs: IBANs, postcodes,
IDs after "Nummer", room and section numbers, house numbers, "S. 3 ff.", "€/kg" and common
business abbreviations. Applied in the order `normalize.py` sets."""

from __future__ import annotations

import re

from facecast.speech.normalize_tables import (
    IDENTIFIER_NOUNS,
    ROOM_NOUNS,
    SECTION_NOUNS,
    STREET_ENDINGS,
    Language,
)
from facecast.speech.normalize_words import (
    Rule,
    cardinal,
    digits_read,
    keeps_period,
    pad,
)


def street_rule() -> Rule:
    """German street names: "Hauptstr. 12" -> "Hauptstraße 12"."""
    return (re.compile(r"\b(\w+)str\.(?=\s?\d|\s*$)"), lambda m: m.group(1) + "straße")


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


def iban_rule(language: Language) -> Rule:
    """ "DE89 3704 0044 ..." -> "D E acht neun, drei sieben null vier, ..."."""

    def replace(match: re.Match[str]) -> str:
        compact = match.group(0).replace(" ", "")
        groups = [compact[i : i + IBAN_GROUP] for i in range(0, len(compact), IBAN_GROUP)]
        return pad(_spell_code(" ".join(groups), language))

    return (_IBAN, replace)


_TOWN_AFTER = (
    r"(?![ ](?:Euro|Dollar|Franken|Pfund|Cent)\b)"
    r"(?=[ ][A-ZÄÖÜ][\w]{0,40}(?:[ ]?$|[ ]?[,;.()\n-]"
    r"|[ ]+(?:am|an der|im|ob der|bei|in der)[ ]+[A-ZÄÖÜ]|[ ]+[A-ZÄÖÜ]))"
)
"""A town name after a postcode: a capital word ending the line or the text, or followed by
punctuation, "am Main", "an der Oder" or a second capital word, and not a currency.
"10000 Menschen demonstrierten" is a count (the verb after it is lower case)."""


def postcode_rules(language: Language) -> list[Rule]:
    """Postcodes are read digit by digit ("10115" -> "eins null eins eins fünf"): after "PLZ",
    after a country prefix ("D-80331", which is not said), or five digits at the start of an
    address line or after a comma, before a town name. Written counts this long carry a
    thousands separator in German ("10.000"), so the bare five digits mark a postcode."""

    def digits(match: re.Match[str]) -> str:
        return match["pre"] + pad(digits_read(match["code"], language))

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
            lambda m: pad(digits_read(m["code"] or m["code4"], language)),
        ),
        (
            re.compile(rf"(?m)(?:^|(?<=[,;] )|(?<=[,;]))(?P<pre>)(?P<code>\d{{5}}){_TOWN_AFTER}"),
            digits,
        ),
    ]


def number_suffix_rule() -> Rule:
    """ "Kundennr." and "Rechnungs-Nr." -> "Kundennummer", "Rechnungsnummer"."""
    return (
        re.compile(r"(?<![\w.-])(?P<stem>[^\W\d]{2,40})(?:nr|-Nr)\."),
        lambda m: f"{m['stem']}nummer",
    )


def following_pages_rule() -> Rule:
    """ "S. 14 ff." -> "Seite vierzehn folgende" ("f." elsewhere is "für")."""
    return (
        re.compile(r"(?<=\d) ?ff?\.(?!\w)"),
        lambda m: " folgende" + ("." if keeps_period(m, False) else ""),
    )


def word_abbreviation_rule(language: Language) -> Rule:
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


def identifier_rule(language: Language) -> Rule:
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


def room_and_section_rule(language: Language) -> Rule:
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


def dotted_number_rule(language: Language) -> Rule:
    """Numbers with dots left after dates, times and thousands: outline and version numbers
    ("3.2.1 Einleitung", "Version 2.0.1", "1.5"), read with "Punkt"."""

    def replace(match: re.Match[str]) -> str:
        written = match.group(0)
        return written if _is_thousands(written) else pad(_outline(written, language))

    return (re.compile(rf"(?<![\w.,]){_DOTTED}(?![\w]|[.,]\d)"), replace)


def house_number_rules(language: Language) -> list[Rule]:
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
            lambda m: pad(f"{cardinal(int(m['n']), language)} {m['letter']}"),
        ),
        # File numbers with a year: "345/25", "1234/2026" ("Strich"); "1/2" stays a fraction.
        (
            re.compile(r"(?<![\w.,/])(?P<n>[1-9]\d{2,5})/(?P<m>\d{2}|\d{4})(?![\w/]|[.,]\d)"),
            lambda m: pad(
                f"{cardinal(int(m['n']), language)} {language.slash_word} "
                f"{cardinal(int(m['m']), language)}"
            ),
        ),
    ]


def per_rule(language: Language) -> Rule:
    """ "3,99 €/kg" -> "3,99 € pro Kilogramm", "850 €/Monat" -> "850 € pro Monat"."""
    symbol = "|".join(re.escape(c) for c in sorted(language.currencies, key=len, reverse=True))

    def replace(match: re.Match[str]) -> str:
        per = match["per"]
        unit = language.units.get(per) or language.units.get(per.rstrip("."))
        said = per
        if unit is not None:
            kept = per.endswith(".") and keeps_period(match, False)
            said = unit.singular + ("." if kept else "")
        return f"{match['cur']} {language.per_word} {said}"

    return (
        re.compile(rf"(?P<cur>{symbol}) ?/ ?(?P<per>[^\W\d]{{1,20}}[²³]?\.?)"),
        replace,
    )

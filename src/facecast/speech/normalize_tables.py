"""The tables text normalisation reads: per language, how numbers are written and read,
month and weekday names, abbreviations, units, currencies, symbols and the words for the
punctuation of web addresses. Adding a language means adding a `Language` here and its date
and time rules in `normalize.py`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """How a unit symbol is read: singular and plural, and (German) the gender for "ein/eine"."""

    singular: str
    plural: str
    feminine: bool = False


@dataclass(frozen=True)
class Language:
    """Everything language-specific the rules need."""

    code: str
    decimal: str
    """Decimal separator as written ("," in German)."""
    group: str
    """Thousands separator as written ("." in German)."""
    point: str
    """How the decimal separator is read."""
    minus: str
    plus: str
    percent: str
    months: tuple[str, ...]
    digits: tuple[str, ...]
    abbreviations: tuple[tuple[str, str], ...]
    """(written, spoken); written forms with their dots, spaces between parts optional."""
    final_abbreviations: frozenset[str]
    """Spoken forms that may end a sentence: their dot also ends it."""
    units: dict[str, Unit]
    currencies: dict[str, tuple[Unit, Unit]]
    """Symbol or code -> (main unit, hundredth)."""
    symbols: tuple[tuple[str, str], ...]
    url_words: dict[str, str]
    """Spoken names of the punctuation inside URLs and e-mail addresses."""
    range_word: str
    """What "10-20" reads as between the numbers."""
    weekdays: tuple[tuple[str, str], ...]
    """(short form without dot, name), for ranges such as "Mo.-Fr."."""
    ratio_word: str
    """What "2:1" reads as between the numbers."""
    point_word: str = ""
    """How the dots of an outline or version number are read ("3.2.1", "2.0.1")."""
    slash_word: str = ""
    """How the slash of a house number is read ("42/1")."""
    per_word: str = ""
    """What a slash after a currency reads as ("3,99 €/kg")."""
    number_abbreviations: tuple[tuple[str, str], ...] = ()
    """(written, spoken) read so only before a number ("S. 14" -> "Seite 14"; "S." alone is
    an initial)."""
    words: tuple[tuple[str, str], ...] = ()
    """Abbreviations written without a dot, read as whole words only, case as written
    ("KW" -> "Kalenderwoche", "OG" -> "Obergeschoss")."""
    weekday_joiners: tuple[tuple[str, str], ...] = ()
    """Words between two short weekdays and how they are read ("Mo. bis Fr.", "Sa. u. So."),
    besides the dash, which reads as `range_word`."""


_DE_UNITS = {
    "km/h": Unit("Kilometer pro Stunde", "Kilometer pro Stunde"),
    "m/s": Unit("Meter pro Sekunde", "Meter pro Sekunde"),
    "km²": Unit("Quadratkilometer", "Quadratkilometer"),
    "m²": Unit("Quadratmeter", "Quadratmeter"),
    "qm": Unit("Quadratmeter", "Quadratmeter"),
    "m³": Unit("Kubikmeter", "Kubikmeter"),
    "km": Unit("Kilometer", "Kilometer"),
    "cm": Unit("Zentimeter", "Zentimeter"),
    "mm": Unit("Millimeter", "Millimeter"),
    "m": Unit("Meter", "Meter"),
    "kg": Unit("Kilogramm", "Kilogramm"),
    "mg": Unit("Milligramm", "Milligramm"),
    "g": Unit("Gramm", "Gramm"),
    "t": Unit("Tonne", "Tonnen", feminine=True),
    "ml": Unit("Milliliter", "Milliliter"),
    "l": Unit("Liter", "Liter"),
    "°C": Unit("Grad Celsius", "Grad Celsius"),
    "°F": Unit("Grad Fahrenheit", "Grad Fahrenheit"),
    "°": Unit("Grad", "Grad"),
    "kWh": Unit("Kilowattstunde", "Kilowattstunden", feminine=True),
    "kW": Unit("Kilowatt", "Kilowatt"),
    "W": Unit("Watt", "Watt"),
    "PS": Unit("PS", "PS"),
    "GB": Unit("Gigabyte", "Gigabyte"),
    "MB": Unit("Megabyte", "Megabyte"),
    "TB": Unit("Terabyte", "Terabyte"),
    "Std.": Unit("Stunde", "Stunden", feminine=True),
    "h": Unit("Stunde", "Stunden", feminine=True),
    "Min.": Unit("Minute", "Minuten", feminine=True),
    "min": Unit("Minute", "Minuten", feminine=True),
    "Sek.": Unit("Sekunde", "Sekunden", feminine=True),
    "s": Unit("Sekunde", "Sekunden", feminine=True),
    "Stk.": Unit("Stück", "Stück"),
}

_EN_UNITS = {
    "km/h": Unit("kilometer per hour", "kilometers per hour"),
    "mph": Unit("mile per hour", "miles per hour"),
    "m/s": Unit("meter per second", "meters per second"),
    "km²": Unit("square kilometer", "square kilometers"),
    "m²": Unit("square meter", "square meters"),
    "sq ft": Unit("square foot", "square feet"),
    "km": Unit("kilometer", "kilometers"),
    "cm": Unit("centimeter", "centimeters"),
    "mm": Unit("millimeter", "millimeters"),
    "m": Unit("meter", "meters"),
    "mi": Unit("mile", "miles"),
    "ft": Unit("foot", "feet"),
    "in": Unit("inch", "inches"),
    "kg": Unit("kilogram", "kilograms"),
    "mg": Unit("milligram", "milligrams"),
    "g": Unit("gram", "grams"),
    "lbs": Unit("pound", "pounds"),
    "lb": Unit("pound", "pounds"),
    "oz": Unit("ounce", "ounces"),
    "ml": Unit("milliliter", "milliliters"),
    "l": Unit("liter", "liters"),
    "°C": Unit("degree Celsius", "degrees Celsius"),
    "°F": Unit("degree Fahrenheit", "degrees Fahrenheit"),
    "°": Unit("degree", "degrees"),
    "kWh": Unit("kilowatt hour", "kilowatt hours"),
    "kW": Unit("kilowatt", "kilowatts"),
    "W": Unit("watt", "watts"),
    "GB": Unit("gigabyte", "gigabytes"),
    "MB": Unit("megabyte", "megabytes"),
    "TB": Unit("terabyte", "terabytes"),
    "hrs": Unit("hour", "hours"),
    "hr": Unit("hour", "hours"),
    "h": Unit("hour", "hours"),
    "min": Unit("minute", "minutes"),
    "sec": Unit("second", "seconds"),
    "s": Unit("second", "seconds"),
}

GERMAN = Language(
    code="de",
    decimal=",",
    group=".",
    point="Komma",
    minus="minus",
    plus="plus",
    percent="Prozent",
    months=(
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    digits=("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
    abbreviations=(
        ("z.B.", "zum Beispiel"),
        ("d.h.", "das heißt"),
        ("u.a.", "unter anderem"),
        ("u.U.", "unter Umständen"),
        ("o.ä.", "oder Ähnliches"),
        ("i.d.R.", "in der Regel"),
        ("z.T.", "zum Teil"),
        ("s.o.", "siehe oben"),
        ("s.u.", "siehe unten"),
        ("v.a.", "vor allem"),
        ("usw.", "und so weiter"),
        ("bzw.", "beziehungsweise"),
        ("ca.", "circa"),
        ("evtl.", "eventuell"),
        ("ggf.", "gegebenenfalls"),
        ("inkl.", "inklusive"),
        ("zzgl.", "zuzüglich"),
        ("exkl.", "exklusive"),
        ("max.", "maximal"),
        ("min.", "mindestens"),
        ("vgl.", "vergleiche"),
        ("etc.", "et cetera"),
        ("Dr.", "Doktor"),
        ("Prof.", "Professor"),
        ("Hr.", "Herr"),
        ("Fr.", "Frau"),
        ("Nr.", "Nummer"),
        ("Str.", "Straße"),
        ("Tel.", "Telefon"),
        ("St.", "Sankt"),
        ("Mio.", "Millionen"),
        ("Mrd.", "Milliarden"),
        ("Tsd.", "Tausend"),
        ("Abs.", "Absatz"),
        ("Jh.", "Jahrhundert"),
        ("MwSt.", "Mehrwertsteuer"),
        # Letters, forms and signs (issue 22): business and office abbreviations.
        ("Fa.", "Firma"),
        ("ggü.", "gegenüber"),
        ("Temp.", "Temperatur"),
        ("i.A.", "im Auftrag"),
        ("i.V.", "in Vertretung"),
        ("z.Hd.", "zu Händen"),
        ("z.K.", "zur Kenntnis"),
        ("o.Ä.", "oder Ähnliches"),
        ("u.Ä.", "und Ähnliches"),
        ("i.H.v.", "in Höhe von"),
        ("z.Zt.", "zurzeit"),
        ("zzt.", "zurzeit"),
        ("u.", "und"),
        ("f.", "für"),
        ("Hrn.", "Herrn"),
        ("Fam.", "Familie"),
        ("Abt.", "Abteilung"),
        ("Bd.", "Band"),
        ("Pos.", "Position"),
        ("Betr.", "Betreff"),
        ("Anl.", "Anlage"),
        ("Az.", "Aktenzeichen"),
        ("gez.", "gezeichnet"),
        ("bzgl.", "bezüglich"),
        ("lt.", "laut"),
        ("gem.", "gemäß"),
        ("abzgl.", "abzüglich"),
        ("Std.", "Stunde"),
        ("tägl.", "täglich"),
        ("werktägl.", "werktäglich"),
        ("geschl.", "geschlossen"),
        ("Abf.", "Abfahrt"),
        ("Ank.", "Ankunft"),
        ("Hbf.", "Hauptbahnhof"),
        ("Bhf.", "Bahnhof"),
        ("Whg.", "Wohnung"),
        ("Kto.", "Konto"),
        ("Dipl.-Ing.", "Diplomingenieur"),
        ("Dipl.-Kfm.", "Diplomkaufmann"),
        ("e.V.", "eingetragener Verein"),
        ("Gebr.", "Gebrüder"),
        ("Tel.-Nr.", "Telefonnummer"),
        ("Kd.-Nr.", "Kundennummer"),
        ("Kdnr.", "Kundennummer"),
        ("Art.-Nr.", "Artikelnummer"),
        ("Best.-Nr.", "Bestellnummer"),
        ("Kto.-Nr.", "Kontonummer"),
        ("Rg.-Nr.", "Rechnungsnummer"),
        ("Re.-Nr.", "Rechnungsnummer"),
        ("Vers.-Nr.", "Versicherungsnummer"),
        ("Mitgl.-Nr.", "Mitgliedsnummer"),
        ("Auftr.-Nr.", "Auftragsnummer"),
        ("St.-Nr.", "Steuernummer"),
        ("Lfd. Nr.", "laufende Nummer"),
        ("USt-IdNr.", "Umsatzsteuer-Identifikationsnummer"),
        ("USt.-IdNr.", "Umsatzsteuer-Identifikationsnummer"),
        ("Ust-IdNr.", "Umsatzsteuer-Identifikationsnummer"),
        ("USt-ID-Nr.", "Umsatzsteuer-Identifikationsnummer"),
        ("USt-Id-Nr.", "Umsatzsteuer-Identifikationsnummer"),
        ("USt.", "Umsatzsteuer"),
        ("Mo.", "Montag"),
        ("Di.", "Dienstag"),
        ("Mi.", "Mittwoch"),
        ("Do.", "Donnerstag"),
        ("Sa.", "Samstag"),
        ("So.", "Sonntag"),
    ),
    final_abbreviations=frozenset(
        {"und so weiter", "et cetera", "oder Ähnliches", "und Ähnliches", "zur Kenntnis"}
    ),
    units=_DE_UNITS,
    currencies={
        "€": (Unit("Euro", "Euro"), Unit("Cent", "Cent")),
        "EUR": (Unit("Euro", "Euro"), Unit("Cent", "Cent")),
        "$": (Unit("Dollar", "Dollar"), Unit("Cent", "Cent")),
        "USD": (Unit("Dollar", "Dollar"), Unit("Cent", "Cent")),
        "£": (Unit("Pfund", "Pfund"), Unit("Penny", "Pence")),
        "GBP": (Unit("Pfund", "Pfund"), Unit("Penny", "Pence")),
        "CHF": (Unit("Franken", "Franken"), Unit("Rappen", "Rappen")),
    },
    symbols=(
        ("&", "und"),
        ("§§", "Paragrafen"),
        ("§", "Paragraf"),
        ("%", "Prozent"),
        ("+", "plus"),
        ("=", "gleich"),
        ("#", "Nummer"),
        ("@", "at"),
        ("€", "Euro"),
        ("$", "Dollar"),
        ("£", "Pfund"),
        ("°", "Grad"),
    ),
    url_words={
        ".": "Punkt",
        "@": "at",
        "/": "Schrägstrich",
        "-": "Bindestrich",
        "_": "Unterstrich",
        ":": "Doppelpunkt",
    },
    range_word="bis",
    weekdays=(
        ("Mo", "Montag"),
        ("Di", "Dienstag"),
        ("Mi", "Mittwoch"),
        ("Do", "Donnerstag"),
        ("Fr", "Freitag"),
        ("Sa", "Samstag"),
        ("So", "Sonntag"),
    ),
    ratio_word="zu",
    point_word="Punkt",
    slash_word="Strich",
    per_word="pro",
    number_abbreviations=(
        ("S.", "Seite"),
        ("Art.", "Artikel"),
        ("Kap.", "Kapitel"),
        ("Abschn.", "Abschnitt"),
        ("Abb.", "Abbildung"),
        ("Tab.", "Tabelle"),
        ("Ziff.", "Ziffer"),
        ("Gl.", "Gleis"),
        ("Zi.", "Zimmer"),
        ("Hs.", "Haus"),
        ("v.", "vom"),
    ),
    words=(
        ("KW", "Kalenderwoche"),
        ("OG", "Obergeschoss"),
        ("EG", "Erdgeschoss"),
        ("UG", "Untergeschoss"),
        ("DG", "Dachgeschoss"),
        ("PLZ", "Postleitzahl"),
        ("BLZ", "Bankleitzahl"),
        ("Hbf", "Hauptbahnhof"),
        ("MwSt", "Mehrwertsteuer"),
        ("USt", "Umsatzsteuer"),
        ("MfG", "Mit freundlichen Grüßen"),
    ),
    weekday_joiners=(("bis", "bis"), ("und", "und"), ("u.", "und"), ("&", "und"), ("/", "und")),
)

ENGLISH = Language(
    code="en",
    decimal=".",
    group=",",
    point="point",
    minus="minus",
    plus="plus",
    percent="percent",
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    digits=("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    abbreviations=(
        ("e.g.", "for example"),
        ("i.e.", "that is"),
        ("etc.", "et cetera"),
        ("vs.", "versus"),
        ("approx.", "approximately"),
        ("incl.", "including"),
        ("Mr.", "Mister"),
        ("Mrs.", "Missus"),
        ("Ms.", "Miss"),
        ("Dr.", "Doctor"),
        ("Prof.", "Professor"),
        ("Jr.", "Junior"),
        ("Sr.", "Senior"),
        ("St.", "Street"),
        ("Ave.", "Avenue"),
        ("Rd.", "Road"),
        ("Blvd.", "Boulevard"),
        ("No.", "number"),
        ("Dept.", "Department"),
        ("Corp.", "Corporation"),
        ("Inc.", "Incorporated"),
        ("Ltd.", "Limited"),
        ("Co.", "Company"),
        ("Jan.", "January"),
        ("Feb.", "February"),
        ("Aug.", "August"),
        ("Sept.", "September"),
        ("Sep.", "September"),
        ("Oct.", "October"),
        ("Nov.", "November"),
        ("Dec.", "December"),
        ("Mon.", "Monday"),
        ("Tue.", "Tuesday"),
        ("Wed.", "Wednesday"),
        ("Thu.", "Thursday"),
        ("Fri.", "Friday"),
        ("Sat.", "Saturday"),
        ("Sun.", "Sunday"),
    ),
    final_abbreviations=frozenset({"et cetera", "Incorporated", "Limited", "Company"}),
    units=_EN_UNITS,
    currencies={
        "$": (Unit("dollar", "dollars"), Unit("cent", "cents")),
        "USD": (Unit("dollar", "dollars"), Unit("cent", "cents")),
        "€": (Unit("euro", "euros"), Unit("cent", "cents")),
        "EUR": (Unit("euro", "euros"), Unit("cent", "cents")),
        "£": (Unit("pound", "pounds"), Unit("penny", "pence")),
        "GBP": (Unit("pound", "pounds"), Unit("penny", "pence")),
        "CHF": (Unit("franc", "francs"), Unit("centime", "centimes")),
    },
    symbols=(
        ("&", "and"),
        ("%", "percent"),
        ("+", "plus"),
        ("=", "equals"),
        ("#", "number"),
        ("@", "at"),
        ("€", "euros"),
        ("$", "dollars"),
        ("£", "pounds"),
        ("°", "degrees"),
    ),
    url_words={
        ".": "dot",
        "@": "at",
        "/": "slash",
        "-": "dash",
        "_": "underscore",
        ":": "colon",
    },
    range_word="to",
    weekdays=(
        ("Mon", "Monday"),
        ("Tues", "Tuesday"),
        ("Tue", "Tuesday"),
        ("Wed", "Wednesday"),
        ("Thurs", "Thursday"),
        ("Thu", "Thursday"),
        ("Fri", "Friday"),
        ("Sat", "Saturday"),
        ("Sun", "Sunday"),
    ),
    ratio_word="to",
)

LANGUAGES = {"de": GERMAN, "en": ENGLISH}

FEMININE_ENDINGS = ("ung", "heit", "keit", "schaft", "ion", "tät", "ik", "e")
"""German noun endings that are mostly feminine: "1 Stunde" -> "eine Stunde", else "ein"."""

ORDINAL_NOUNS = {
    "Stock": "r",
    "Platz": "r",
    "Rang": "r",
    "Tag": "r",
    "Spieltag": "r",
    "Geburtstag": "r",
    "Monat": "r",
    "Advent": "r",
    "Mal": "s",
    "Jahr": "s",
    "Jahrhundert": "s",
    "Quartal": "s",
    "Kapitel": "s",
    "Halbjahr": "s",
    "Obergeschoss": "s",
    "OG": "s",
    "Untergeschoss": "s",
    "Dachgeschoss": "s",
    "Kalenderwoche": "",
    "Etage": "",
    "Klasse": "",
    "Liga": "",
    "Runde": "",
    "Woche": "",
    "Auflage": "",
    "Halbzeit": "",
}
"""Nouns a German ordinal often stands before without an article, with the ending it takes
then ("3. Stock" -> "dritter Stock", "2. Klasse" -> "zweite Klasse")."""

ROOM_NOUNS = ("Raum", "raum", "Zimmer", "zimmer", "Saal", "saal", "Büro", "Labor", "Hörsaal")
"""Words (or compound endings) before a room number: "Raum 2.14" is floor 2, room 14, read
"zwei vierzehn" as Germans say it on the corridor."""

SECTION_NOUNS = (
    "Abschnitt",
    "Kapitel",
    "Ziffer",
    "Punkt",
    "Nummer",
    "Anlage",
    "Anhang",
    "Abbildung",
    "Tabelle",
    "Absatz",
    "Artikel",
    "Paragraf",
    "Paragraph",
    "§",
    "Version",
    "Schritt",
    "Aufgabe",
    "Teil",
    "Seite",
)
"""Words before an outline number: "Abschnitt 3.2.1" reads "drei Punkt zwei Punkt eins", and
"Kapitel 4.3." is a section, not the fourth of March."""

STREET_ENDINGS = (
    "straße",
    "Straße",
    "strasse",
    "Strasse",
    "weg",
    "Weg",
    "platz",
    "Platz",
    "allee",
    "Allee",
    "gasse",
    "Gasse",
    "ring",
    "Ring",
    "damm",
    "Damm",
    "ufer",
    "Ufer",
    "chaussee",
    "Chaussee",
    "pfad",
    "steig",
    "markt",
    "Markt",
    "Hausnummer",
)
"""Word endings after which a number is a house number: "Gartenstraße 42/1" reads
"zweiundvierzig Strich eins", as said when spelling out an address."""

IDENTIFIER_NOUNS = ("nummer", "Nummer", "Aktenzeichen")
"""Words after which a long number or a code of letters and digits is an identifier, read
digit by digit ("Kundennummer 123456", "Rechnungsnummer RE-2026-0142")."""

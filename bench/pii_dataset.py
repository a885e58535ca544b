"""Generates the labelled PII set ``bench/data/pii_labelled.jsonl`` (deterministic: seeded).

    python bench/pii_dataset.py            # (re)write the file
    python bench/pii_dataset.py --check    # exit 1 if the committed file differs from what this generates

Each line: ``{"id", "text", "spans": [{"start", "end", "entity", "format"}]}``; offsets are Python string
indices computed while the text is assembled, never typed by hand. ``format`` says how the value is
written (``gb_national``, ``amex_dash``, ``de_spaced``, ``yoruba:full``, ``city``, ...) so misses can
be traced to a format. Sentences with ids ``neg-*`` are hard negatives: no PII, but digits, dates,
versions, codes and gateway placeholders such as ``<EMAIL_ADDRESS_1>`` (which are not PII).

The values are realistic and valid by their own rules, independently of any engine: phone numbers
follow each country's numbering plan (real area codes and mobile prefixes, never the 555 fiction
range), card numbers carry real brand prefixes and a Luhn check digit, IBANs a mod-97 check (and the
national check digits where the country has a simple one), SSNs the SSA's area/group/serial rules.
Names come from many cultures; a title (``Dr.``), a possessive ``'s`` or a leading ``the`` is never
part of a span. Templates are business, support, HR, travel, medical, finance, chat and dev-log text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240515
PII_ROUNDS = 2
"""Each PII template is rendered this many times, with different values."""
DATA_FILE = Path(__file__).resolve().parent / "data" / "pii_labelled.jsonl"

Value = tuple[str, str]
"""(text, format)."""


# --- people and places ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    culture: str
    family_first: bool = False

    @property
    def full(self) -> str:
        return f"{self.last} {self.first}" if self.family_first else f"{self.first} {self.last}"


PEOPLE = [
    Person("Emily", "Carter", "english"), Person("James", "O'Connor", "irish"),
    Person("Sarah", "Mitchell", "english"), Person("Michael", "Brooks", "english"),
    Person("Siobhán", "Gallagher", "irish"), Person("María", "González", "spanish"),
    Person("José", "Hernández", "mexican"), Person("Lucía", "Fernández", "spanish"),
    Person("Carlos", "Ramírez", "colombian"), Person("Valentina", "Torres", "argentine"),
    Person("João", "Pereira", "portuguese"), Person("Ana Beatriz", "Souza", "brazilian"),
    Person("Thiago", "Oliveira", "brazilian"), Person("Lukas", "Schneider", "german"),
    Person("Anna", "Müller", "german"), Person("Jürgen", "Weber", "german"),
    Person("Katrin", "Hoffmann", "german"), Person("Camille", "Dubois", "french"),
    Person("Étienne", "Lefèvre", "french"), Person("Chloé", "Martin", "french"),
    Person("Giulia", "Romano", "italian"), Person("Marco", "Bianchi", "italian"),
    Person("Daan", "van der Berg", "dutch"), Person("Sanne", "de Vries", "dutch"),
    Person("Katarzyna", "Nowak", "polish"), Person("Piotr", "Wiśniewski", "polish"),
    Person("Dmitri", "Ivanov", "russian"), Person("Olena", "Kovalenko", "ukrainian"),
    Person("Emre", "Yılmaz", "turkish"), Person("Elif", "Demir", "turkish"),
    Person("Ahmed", "Al-Farsi", "arabic"), Person("Fatima", "Haddad", "arabic"),
    Person("Omar", "Khalil", "arabic"), Person("Layla", "Mansour", "arabic"),
    Person("Youssef", "Benali", "moroccan"), Person("Reza", "Tehrani", "persian"),
    Person("Shirin", "Ahmadi", "persian"), Person("Noa", "Levi", "israeli"),
    Person("Yossi", "Cohen", "israeli"), Person("Priya", "Natarajan", "tamil"),
    Person("Rahul", "Sharma", "indian"), Person("Ananya", "Iyer", "indian"),
    Person("Vikram", "Reddy", "indian"), Person("Sneha", "Kulkarni", "indian"),
    Person("Ayesha", "Siddiqui", "pakistani"), Person("Tanvir", "Rahman", "bangladeshi"),
    Person("Wei", "Zhang", "chinese", family_first=True), Person("Jing", "Chen", "chinese"),
    Person("Xiaoming", "Liu", "chinese"), Person("Haruto", "Sato", "japanese"),
    Person("Yuki", "Tanaka", "japanese", family_first=True), Person("Aiko", "Nakamura", "japanese"),
    Person("Ji-woo", "Park", "korean"), Person("Min-jun", "Kim", "korean", family_first=True),
    Person("Thu", "Nguyen", "vietnamese", family_first=True), Person("Linh", "Pham", "vietnamese"),
    Person("Angelica", "Dela Cruz", "filipino"), Person("Chinedu", "Okafor", "igbo"),
    Person("Oluwaseun", "Balogun", "yoruba"), Person("Ngozi", "Adeyemi", "yoruba"),
    Person("Wanjiru", "Kamau", "kikuyu"), Person("Amina", "Hassan", "somali"),
    Person("Kwame", "Mensah", "akan"), Person("Akosua", "Boateng", "akan"),
    Person("Abebe", "Bekele", "ethiopian"), Person("Sigrid", "Johansson", "swedish"),
    Person("Lars", "Eriksen", "norwegian"), Person("Mikko", "Virtanen", "finnish"),
    Person("Nikos", "Papadopoulos", "greek"), Person("Eleni", "Georgiou", "greek"),
    Person("Kai", "Kahananui", "hawaiian"), Person("Aroha", "Ngata", "maori"),
]

CITIES = [
    "Berlin", "Munich", "Hamburg", "Paris", "Lyon", "Marseille", "London", "Manchester", "Edinburgh",
    "Dublin", "Madrid", "Barcelona", "Lisbon", "Porto", "Rome", "Milan", "Amsterdam", "Rotterdam",
    "Brussels", "Zurich", "Vienna", "Warsaw", "Kraków", "Prague", "Stockholm", "Oslo", "Helsinki",
    "Athens", "Istanbul", "Cairo", "Lagos", "Nairobi", "Accra", "Addis Ababa", "Johannesburg",
    "Cape Town", "Casablanca", "Dubai", "Riyadh", "Tel Aviv", "Mumbai", "Bengaluru", "Delhi", "Chennai",
    "Karachi", "Dhaka", "Singapore", "Jakarta", "Manila", "Hanoi", "Bangkok", "Tokyo", "Osaka", "Seoul",
    "Shanghai", "Beijing", "Sydney", "Melbourne", "Auckland", "Toronto", "Vancouver", "Montreal",
    "New York", "San Francisco", "Chicago", "Austin", "Seattle", "Boston", "Mexico City", "Bogotá",
    "Lima", "São Paulo", "Rio de Janeiro", "Buenos Aires", "Santiago",
]
COUNTRIES = [
    "Germany", "France", "Spain", "Portugal", "Italy", "Ireland", "Poland", "Kenya", "Nigeria", "Ghana",
    "Egypt", "India", "Japan", "Brazil", "Mexico", "Canada", "Australia", "Vietnam", "Turkey",
    "Argentina", "South Africa", "Sweden", "Morocco", "Indonesia", "Colombia", "Norway", "Greece",
]
REGIONS = [
    "Bavaria", "California", "Texas", "Ontario", "Quebec", "Catalonia", "Tuscany", "Scotland",
    "Andalusia", "Kerala", "Queensland", "Patagonia", "Brittany", "Lombardy", "Maharashtra",
    "New South Wales", "British Columbia", "Yorkshire", "Tyrol", "Hokkaido",
]
PLACES = [  # (city, country or region) written together, e.g. "Cairo, Egypt"
    ("Cairo", "Egypt", "country"), ("Lagos", "Nigeria", "country"), ("Nairobi", "Kenya", "country"),
    ("Accra", "Ghana", "country"), ("Lyon", "France", "country"), ("Porto", "Portugal", "country"),
    ("Kraków", "Poland", "country"), ("Osaka", "Japan", "country"), ("Hanoi", "Vietnam", "country"),
    ("Izmir", "Turkey", "country"), ("Cordoba", "Argentina", "country"), ("Durban", "South Africa", "country"),
    ("Gothenburg", "Sweden", "country"), ("Marrakesh", "Morocco", "country"), ("Medellín", "Colombia", "country"),
    ("Bergen", "Norway", "country"), ("Thessaloniki", "Greece", "country"), ("Surabaya", "Indonesia", "country"),
    ("Munich", "Bavaria", "region"), ("Barcelona", "Catalonia", "region"), ("Toronto", "Ontario", "region"),
    ("Montreal", "Quebec", "region"), ("Florence", "Tuscany", "region"), ("Glasgow", "Scotland", "region"),
    ("Seville", "Andalusia", "region"), ("Kochi", "Kerala", "region"), ("Brisbane", "Queensland", "region"),
    ("Rennes", "Brittany", "region"), ("Bergamo", "Lombardy", "region"), ("Pune", "Maharashtra", "region"),
    ("Newcastle", "New South Wales", "region"), ("Victoria", "British Columbia", "region"),
    ("Leeds", "Yorkshire", "region"), ("Innsbruck", "Tyrol", "region"), ("Sapporo", "Hokkaido", "region"),
    ("Austin", "Texas", "region"), ("San Diego", "California", "region"),
]
TITLES = ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]

_ASCII = str.maketrans({"ı": "i", "ł": "l", "ß": "ss", "ø": "o", "æ": "ae", "'": "", " ": "", "-": ""})


def _ascii(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


# --- value generators (each returns (text, format)) -----------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


PERSONAL_DOMAINS = [
    "gmail.com", "outlook.com", "yahoo.co.uk", "proton.me", "gmx.de", "web.de", "orange.fr", "libero.it",
    "hotmail.com", "icloud.com", "yahoo.com.br", "rediffmail.com", "naver.com", "qq.com",
]
WORK_DOMAINS = [
    "acme-logistics.com", "mail.northwind.io", "corp.contoso-bank.de", "eng.globex.co.jp",
    "fabrikam.com.br", "uni-heidelberg.de", "cs.ox.ac.uk", "tailspin-travel.fr", "hq.initech.co.za",
    "clinic.stmarys-health.ie", "wingtip.com.au", "lamna.in",
]
ROLE_LOCALS = ["support", "billing", "hr-team", "noreply", "jobs", "accounts.payable", "it.helpdesk"]


def email_for(p: Person, style: str, rng: random.Random) -> str:
    first, last = _ascii(p.first), _ascii(p.last)
    if style == "first.last":
        return f"{first}.{last}@{rng.choice(WORK_DOMAINS)}"
    if style == "initial_last":
        return f"{first[0]}{last}@{rng.choice(WORK_DOMAINS)}"
    if style == "first_last_digits":
        return f"{first}_{last}{rng.randrange(10, 99)}@{rng.choice(PERSONAL_DOMAINS)}"
    if style == "plus":
        tag = rng.choice(["shopping", "newsletters", "work", "2024", "bank"])
        return f"{first}+{tag}@{rng.choice(PERSONAL_DOMAINS)}"
    if style == "last.first_subdomain":
        return f"{last}.{first}@{rng.choice([d for d in WORK_DOMAINS if d.count('.') >= 2])}"
    if style == "nickname":
        return f"{first}{rng.choice(['', '.', '_'])}{rng.randrange(1970, 2006)}@{rng.choice(PERSONAL_DOMAINS)}"
    raise ValueError(style)


EMAIL_STYLES = ["first.last", "initial_last", "first_last_digits", "plus", "last.first_subdomain", "nickname"]


def _us_line(rng: random.Random) -> tuple[str, str, str]:
    area = rng.choice(["212", "415", "312", "617", "206", "512", "303", "404", "646", "718", "213",
                       "305", "702", "917", "469", "416", "604", "514", "403"])
    while True:
        exchange = f"{rng.randrange(2, 10)}{_digits(rng, 2)}"
        if exchange[1:] != "11" and exchange != "555":
            return area, exchange, _digits(rng, 4)


def _phone(fmt: str, rng: random.Random) -> str:  # long on purpose: one branch per format
    if fmt.startswith("us_"):
        a, x, n = _us_line(rng)
        return {
            "us_intl_paren": f"+1 ({a}) {x}-{n}", "us_dash": f"{a}-{x}-{n}", "us_dot": f"{a}.{x}.{n}",
            "us_paren": f"({a}) {x}-{n}", "us_e164": f"+1{a}{x}{n}", "us_intl_space": f"+1 {a} {x} {n}",
        }[fmt]
    if fmt == "gb_intl_london":
        return f"+44 20 {rng.choice('378')}{_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "gb_national_london":
        return f"020 {rng.choice('378')}{_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "gb_national_manchester":
        return f"0161 {rng.randrange(2, 10)}{_digits(rng, 2)} {_digits(rng, 4)}"
    if fmt in ("gb_intl_mobile", "gb_national_mobile"):
        body = f"7{rng.choice(['40', '44', '47', '50', '52', '71', '73', '77', '79'])}{_digits(rng, 1)} " \
               f"{_digits(rng, 6)}"
        return f"+44 {body}" if fmt == "gb_intl_mobile" else f"0{body}"
    if fmt == "de_intl_berlin":
        return f"+49 30 {rng.randrange(2, 10)}{_digits(rng, 7)}"
    if fmt == "de_national_munich":
        return f"089 {rng.randrange(2, 10)}{_digits(rng, 6)}"
    if fmt in ("de_intl_mobile", "de_national_mobile"):
        prefix = rng.choice(["151", "152", "160", "170", "176", "157"])
        rest = _digits(rng, 8) if prefix in ("151", "152", "176", "157") else _digits(rng, 7)
        return f"+49 {prefix} {rest}" if fmt == "de_intl_mobile" else f"0{prefix} {rest}"
    if fmt in ("fr_intl", "fr_national"):
        lead, pair = rng.choice([("1", "42"), ("1", "44"), ("1", "47"), ("1", "53"), ("2", "40"), ("3", "88"),
                                 ("4", "72"), ("4", "91"), ("5", "56"), ("6", "12"), ("6", "71"), ("7", "81")])
        pairs = " ".join([pair, *(_digits(rng, 2) for _ in range(3))])
        return f"+33 {lead} {pairs}" if fmt == "fr_intl" else f"0{lead} {pairs}"
    if fmt in ("in_intl_mobile", "in_national_mobile"):
        number = f"{rng.choice('6789')}{_digits(rng, 4)} {_digits(rng, 5)}"
        return f"+91 {number}" if fmt == "in_intl_mobile" else f"0{number}"
    if fmt == "in_intl_delhi":
        return f"+91 11 2{_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt in ("br_intl_mobile", "br_national_mobile"):
        ddd = rng.choice(["11", "21", "31", "41", "51", "61", "71", "81"])
        number = f"9{rng.choice('6789')}{_digits(rng, 3)}-{_digits(rng, 4)}"
        return f"+55 {ddd} {number}" if fmt == "br_intl_mobile" else f"({ddd}) {number}"
    if fmt in ("il_intl_mobile", "il_national_mobile"):
        prefix = f"5{rng.choice('0234')}"
        number = f"{rng.randrange(2, 10)}{_digits(rng, 2)}-{_digits(rng, 4)}"
        return f"+972 {prefix}-{number}" if fmt == "il_intl_mobile" else f"0{prefix}-{number}"
    if fmt == "au_intl_mobile":
        return f"+61 4{rng.choice(['00', '01', '04', '07', '08', '12', '17', '23', '38'])} {_digits(rng, 3)} " \
               f"{_digits(rng, 3)}"
    if fmt == "au_national_mobile":
        return f"04{rng.choice(['00', '01', '04', '07', '08', '12', '17', '23', '38'])} {_digits(rng, 3)} " \
               f"{_digits(rng, 3)}"
    if fmt == "es_intl_mobile":
        return f"+34 6{_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}"
    if fmt == "it_intl_mobile":
        return f"+39 3{rng.choice('234579')}{_digits(rng, 1)} {_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "nl_intl_mobile":
        return f"+31 6 {rng.randrange(1, 6)}{_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "jp_intl_tokyo":
        return f"+81 3-{rng.randrange(3, 7)}{_digits(rng, 3)}-{_digits(rng, 4)}"
    if fmt == "mx_intl":
        return f"+52 55 {rng.randrange(1, 10)}{_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "ng_intl_mobile":
        return f"+234 80{rng.choice('3456789')} {_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "ke_intl_mobile":
        return f"+254 7{rng.choice('012')}{_digits(rng, 1)} {_digits(rng, 3)} {_digits(rng, 3)}"
    if fmt == "sg_intl":
        return f"+65 {rng.choice(['81', '82', '86', '87', '90', '91', '92', '96', '97'])}{_digits(rng, 2)} " \
               f"{_digits(rng, 4)}"
    if fmt == "ae_intl_mobile":
        return f"+971 5{rng.choice('0256')} {_digits(rng, 3)} {_digits(rng, 4)}"
    if fmt == "za_intl_mobile":
        return f"+27 8{rng.choice('234')} {_digits(rng, 3)} {_digits(rng, 4)}"
    raise ValueError(fmt)


PHONE_FORMATS = [
    "us_intl_paren", "us_dash", "us_dot", "us_paren", "us_e164", "us_intl_space",
    "gb_intl_london", "gb_national_london", "gb_national_manchester", "gb_intl_mobile", "gb_national_mobile",
    "de_intl_berlin", "de_national_munich", "de_intl_mobile", "de_national_mobile",
    "fr_intl", "fr_national", "in_intl_mobile", "in_national_mobile", "in_intl_delhi",
    "br_intl_mobile", "br_national_mobile", "il_intl_mobile", "il_national_mobile",
    "au_intl_mobile", "au_national_mobile", "es_intl_mobile", "it_intl_mobile", "nl_intl_mobile",
    "jp_intl_tokyo", "mx_intl", "ng_intl_mobile", "ke_intl_mobile", "sg_intl", "ae_intl_mobile",
    "za_intl_mobile",
]


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: the rightmost digit of the body sits left of the check digit
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return luhn_check_digit(digits[:-1]) == digits[-1]


CARD_BRANDS: dict[str, Callable[[random.Random], str]] = {
    "visa": lambda rng: "4" + _digits(rng, 5),
    "mastercard": lambda rng: f"5{rng.randrange(1, 6)}" + _digits(rng, 4),
    "mastercard2": lambda rng: str(rng.randrange(2221, 2721)) + _digits(rng, 2),
    "amex": lambda rng: rng.choice(["34", "37"]) + _digits(rng, 4),
    "discover": lambda rng: rng.choice(["6011" + _digits(rng, 2), "65" + _digits(rng, 4)]),
}


def card_number(brand: str, rng: random.Random) -> str:
    length = 15 if brand == "amex" else 16
    body = CARD_BRANDS[brand](rng)
    body += _digits(rng, length - 1 - len(body))
    return body + luhn_check_digit(body)


def _card(fmt: str, rng: random.Random) -> str:
    brand, sep = fmt.rsplit("_", 1)
    digits = card_number(brand, rng)
    groups = [digits[:4], digits[4:10], digits[10:]] if brand == "amex" else [
        digits[i:i + 4] for i in range(0, 16, 4)]
    return {"space": " ", "dash": "-", "plain": ""}[sep].join(groups)


CARD_FORMATS = [f"{b}_{s}" for b in ("visa", "mastercard", "amex", "discover") for s in ("space", "dash", "plain")]
CARD_FORMATS += ["visa_space", "visa_plain", "mastercard2_space"]


def _mod97(text: str) -> int:
    number = "".join(str(int(c, 36)) for c in text)
    return int(number) % 97


def iban_from_bban(country: str, bban: str) -> str:
    check = 98 - _mod97(bban + country + "00")
    return f"{country}{check:02d}{bban}"


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    return _mod97(compact[4:] + compact[:4]) == 1


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))


def _fr_bban(rng: random.Random) -> str:
    bank, branch, account = _digits(rng, 5), _digits(rng, 5), _digits(rng, 11)
    key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    return f"{bank}{branch}{account}{key:02d}"


def _es_bban(rng: random.Random) -> str:
    weights = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6]

    def dc(ten: str) -> str:
        d = 11 - sum(int(c) * w for c, w in zip(ten, weights, strict=True)) % 11
        return str({11: 0, 10: 1}.get(d, d))

    bank, branch, account = _digits(rng, 4), _digits(rng, 4), _digits(rng, 10)
    return f"{bank}{branch}{dc('00' + bank + branch)}{dc(account)}{account}"


def _nl_bban(rng: random.Random) -> str:
    while True:  # the Dutch "elfproef"
        account = _digits(rng, 10)
        if account[0] != "0" and sum(int(c) * (10 - i) for i, c in enumerate(account)) % 11 == 0:
            return rng.choice(["ABNA", "INGB", "RABO", "TRIO"]) + account


def _be_bban(rng: random.Random) -> str:
    first = _digits(rng, 10)
    check = int(first) % 97 or 97
    return f"{first}{check:02d}"


def _pt_bban(rng: random.Random) -> str:
    first = _digits(rng, 19)
    return f"{first}{98 - int(first + '00') % 97:02d}"


IBAN_BBANS: dict[str, Callable[[random.Random], str]] = {
    "DE": lambda rng: _digits(rng, 18),
    "GB": lambda rng: rng.choice(["NWBK", "BARC", "LOYD", "HBUK", "MIDL"]) + _digits(rng, 14),
    "FR": _fr_bban,
    "ES": _es_bban,
    "NL": _nl_bban,
    "BE": _be_bban,
    "AT": lambda rng: _digits(rng, 16),
    "CH": lambda rng: _digits(rng, 17),
    "IE": lambda rng: rng.choice(["AIBK", "BOFI"]) + _digits(rng, 14),
    "PT": _pt_bban,
    "PL": lambda rng: _digits(rng, 24),
}


def _iban(fmt: str, rng: random.Random) -> str:
    country, style = fmt.split("_")
    iban = iban_from_bban(country.upper(), IBAN_BBANS[country.upper()](rng))
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)) if style == "spaced" else iban


IBAN_FORMATS = [f"{c.lower()}_{s}" for c in IBAN_BBANS for s in ("spaced", "compact")]


def _ssn(fmt: str, rng: random.Random) -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            break
    group, serial = rng.randrange(1, 100), rng.randrange(1, 10000)
    sep = {"dash": "-", "space": " ", "plain": ""}[fmt]
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


SSN_FORMATS = ["dash", "dash", "dash", "space", "plain"]


def _ip(fmt: str, rng: random.Random) -> str:
    if fmt == "v4_public":
        first = rng.choice([23, 31, 45, 62, 78, 81, 91, 103, 109, 151, 176, 185, 193, 203, 212])
        return f"{first}.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
    if fmt == "v4_private":
        return rng.choice([
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        ])
    groups = [f"{rng.randrange(0x10000):x}" for _ in range(8)]
    if fmt == "v6_full":
        return ":".join(["2001", "0db8", *(g.zfill(4) for g in groups[2:])])
    if fmt == "v6_compressed":
        return f"{rng.choice(['2001:db8', '2a02:8108', '2600:1f18', '2c0f:fb50'])}:{groups[2]}::{groups[7]}"
    if fmt == "v6_link_local":
        return f"fe80::{':'.join(groups[4:])}"
    if fmt == "v6_upper":
        return f"2A00:1450:{groups[2]}:{groups[3]}::{groups[7]}".upper()
    raise ValueError(fmt)


IP_FORMATS = ["v4_public", "v4_public", "v4_private", "v6_full", "v6_compressed", "v6_link_local", "v6_upper"]

# --- fillers: realistic non-PII values that share characters with PII -----------------------------


def _filler(kind: str, rng: random.Random) -> str:
    if kind == "ORDER":
        return rng.choice([f"#{_digits(rng, 7)}", f"ORD-2024-{_digits(rng, 5)}", f"A{_digits(rng, 6)}",
                           f"{rng.randrange(100, 999)}-{_digits(rng, 7)}-{_digits(rng, 7)}"])
    if kind == "TICKET":
        return rng.choice([f"#{_digits(rng, 5)}", f"SR-{_digits(rng, 5)}", f"INC00{_digits(rng, 5)}"])
    if kind == "DATE":
        month = rng.choice(["January", "March", "April", "June", "September", "October", "November"])
        day, month_no = rng.randrange(1, 29), rng.randrange(1, 13)
        return rng.choice([f"{day} {month}", f"2024-{month_no:02d}-{day:02d}", f"{month_no:02d}/{day:02d}/2024",
                           f"{month} {day}", rng.choice(["next Monday", "Friday", "the 14th"])])
    if kind == "TIME":
        return rng.choice([f"{rng.randrange(7, 19):02d}:{rng.choice(['00', '15', '30', '45'])}",
                           f"{rng.randrange(1, 12)}:{rng.choice(['00', '30'])} {rng.choice(['am', 'pm'])}"])
    if kind == "AMOUNT":
        return f"{rng.randrange(12, 9800):,}.{rng.choice(['00', '50', '99', '20'])}"
    if kind == "TS":
        return f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:" \
               f"{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
    if kind == "PORT":
        return str(rng.choice([443, 8080, 51234, 60112, 3306, 22, 49822]))
    if kind == "TITLE":
        return rng.choice(TITLES)
    raise ValueError(kind)


# --- templates --------------------------------------------------------------------------------------
# Tokens: {KIND}, {KIND#2} (a second, different value), {KIND:prefix} (a format starting with prefix),
# {P.full|first|last|email}. PII kinds: P, EMAIL, PHONE, CARD, IBAN, SSN, IP, IP4, IP6, CITY, COUNTRY,
# REGION, PLACE ("City, Country" or "City, Region": two spans), CITYREGION ("City, Region").
# Fillers (never labelled): ORDER, TICKET, DATE, TIME, AMOUNT, TS, PORT, TITLE.

PII_TEMPLATES = [
    # support tickets and customer messages
    "Hi {P.first}, thanks for contacting us about order {ORDER}. We've updated the delivery address and "
    "will text you at {PHONE} once it ships.",
    "Customer {P.full} ({P.email}) reports a double charge on {DATE}; the card on file is {CARD}.",
    "{P.full} called from {PHONE} asking why the refund for ticket {TICKET} hasn't arrived yet.",
    "Please update my email to {EMAIL}. The old one, {EMAIL#2}, no longer works.",
    "Can someone call me back? My number is {PHONE}. - {P.first}",
    "Ticket {TICKET}: user {P.email} can't log in from {IP4}; the account was locked after 5 failed attempts.",
    "I'm {P.full} and I moved from {CITY} to {CITY#2} last month, so please change the billing address.",
    "Escalating to {P.full}: the customer in {COUNTRY} was billed in the wrong currency.",
    "Thanks,\n{P.full}\nSenior Support Engineer\n{PHONE}",
    "Hello, my card {CARD} was declined three times today even though my bank says everything is fine.",
    "{P.first}'s laptop keeps dropping the VPN; it was last seen from {IP4} at {TIME}.",
    "Please send the replacement to {P.full}, who sits in our {CITY} office (desk phone {PHONE}).",
    # HR notes
    "HR note: {P.full} starts on {DATE} in {CITY}; payroll needs the IBAN {IBAN} and SSN {SSN} before the "
    "first run.",
    "Employee SSN: {SSN}. Name: {P.full}. Department: Logistics.",
    "{P.full} has requested parental leave from {DATE}; the manager, {P#2.full}, has approved it.",
    "Reference check for {P.full}: spoke with {P#2.full} at {P#2.email}, who recommended "
    "the candidate strongly.",
    "Please pay the relocation bonus to {IBAN} (account holder: {P.full}).",
    "Update: {P.last} will transfer from the {CITY} team to {CITY#2} in Q3.",
    "Onboarding checklist for {P.first}: laptop, badge, and a welcome call on {PHONE}.",
    "The W-2 for {P.full}, SSN {SSN}, was mailed to the address in {REGION}.",
    "Exit interview with {P.full} is scheduled; forward your questions to {EMAIL}.",
    # travel
    "Booking confirmed for {P.full}: {CITY} to {CITY#2} on {DATE}, paid with {CARD}.",
    "{TITLE} {P.last} would like a window seat on the flight to {CITY}; the contact number is {PHONE}.",
    "Hotel reservation under the name {P.full}, arriving in {PLACE} on {DATE}, two nights.",
    "Could you rebook {P.first} and {P#2.first} on the later train to {CITY}? Their contact number is "
    "{PHONE}.",
    "We're planning a road trip through {REGION} and want to end in {CITY}; the rental goes on my Amex "
    "{CARD:amex}.",
    "Visa application for {P.full}, born in {CITY}, travelling to {COUNTRY} for a conference on {DATE}.",
    "{TITLE} {P.last} cancelled the stay in {CITY}; please refund the deposit to IBAN {IBAN}.",
    # medical scheduling
    "Dr. {P.last} can see {P#2.full} on {DATE} at {TIME}; please confirm by calling {PHONE}.",
    "Patient {P.full} (SSN {SSN}) was referred to the cardiology clinic in {CITY}.",
    "Reminder for {P.first}: your follow-up with Dr. {P#2.last} is next Tuesday. Reply to {EMAIL} to "
    "reschedule.",
    "{P.full}'s lab results were faxed to the clinic in {REGION}; the nurse line is {PHONE}.",
    "Prescription refill for {P.full}, DOB {DATE}, to be picked up at the pharmacy in {CITY}.",
    "Nurse {P.first} noted that the patient's emergency contact, {P#2.full}, can be reached at {PHONE}.",
    # dev logs and ops chat
    "{TS} WARN auth: failed login for {P.email} from {IP4} (attempt 3/5)",
    "Blocked request from {IP6} after 120 requests in 60 s; user agent curl/8.4.0.",
    "[{TS}] conn_id=4412 peer={IP4}:{PORT} user={P.email} status=200 bytes=5123",
    "Deploy by {P.first} to prod-eu ({IP4}) finished in 4m12s; rollback target is v3.8.1.",
    "Can you allow-list {IP4} and {IP6} for the staging database? Thanks, {P.first}",
    "The webhook at http://{IP4}:8080/hooks/payments keeps timing out since {DATE}.",
    "git blame says {P.full} <{P.email}> wrote this retry loop back in 2021.",
    "SSH into [{IP6}]:2222 as deploy and check /var/log/app.log - {P.first} saw the OOM there.",
    "DEBUG payment_intent created card={CARD:visa_plain} amount=4999 currency=eur customer={EMAIL}",
    "The DNS record for api.internal points at {IP4}, but traffic still goes to {IP4#2}.",
    # finance and billing
    "Please wire EUR {AMOUNT} to {IBAN}, reference {ORDER}, by end of day.",
    "Our supplier in {CITY} changed banks: the new IBAN is {IBAN}, BIC to follow.",
    "Charge of ${AMOUNT} on card {CARD} was disputed by {P.full} on {DATE}.",
    "Direct debit mandate: debtor {P.full}, IBAN {IBAN}, creditor ID on file.",
    "My Discover card {CARD:discover} expires next month; can I update it before the renewal?",
    "For the refund use {IBAN} - that's my new account, not the old one.",
    "Both cards were compromised: {CARD} and {CARD#2}. Please block them today.",
    # chat
    "hey, it's {P.first}! lost my phone, new number is {PHONE}",
    "Just landed in {CITY} :) text me on {PHONE} when you're free.",
    "Met {P.full} at the conference in {CITY}; they are moving to {COUNTRY} next year.",
    "Ask {P.first} - {P.first} handled the {CITY} migration last spring.",
    "{P.first}, can you forward me {P#2.first}'s email? I think it's {P#2.email}.",
    "Congrats to {P.full} and {P#2.full} on closing the {REGION} deal!",
    # sales and CRM
    "Lead: {P.full}, Head of Procurement, {CITY}. Email {P.email}, phone {PHONE}.",
    "Spoke with {P.first} from the {CITY} branch; follow up at {P.email} next week.",
    "New contact - name: {P.full}; email: {P.email}; mobile: {PHONE}; region: {REGION}.",
    "{P.full} from {COUNTRY} asked for a demo; I said {P#2.first} would reach out.",
    # legal and forms
    "I, {P.full}, residing in {CITYREGION}, authorise the transfer from account {IBAN}.",
    "Form 1040 attachment: taxpayer {P.full}, SSN {SSN}; spouse {P#2.full}, SSN {SSN#2}.",
    "The tenant, {P.full}, may be contacted at {P.email} or {PHONE}.",
    # several entities at once
    "Summary: {P.full} ({P.email}, {PHONE}) paid with {CARD} from {IP4} while travelling in {COUNTRY}.",
    "Please verify: name {P.full}, SSN {SSN}, IBAN {IBAN}, phone {PHONE}.",
    # names in various positions
    "The report was reviewed and signed off by {P.full}.",
    "Best regards,\n{P.first}",
    "Kind regards, {P.full} | {PHONE} | {PLACE}",
    "Dear {TITLE} {P.last},\n\nyour appointment has been moved to {DATE}.",
    "Hi {P.first},\nthe documents for the {CITY} lease are attached.",
    "According to {P.last}, the shipment to {COUNTRY} is stuck at customs.",
    "Could {P.full} please confirm the new IBAN {IBAN} in writing?",
    "Prof. {P.full} will give the keynote in {CITY} this year.",
    "This is {P.first} from accounts; my direct line is {PHONE}.",
    "Forwarding {P.full}'s CV - open to relocating to {REGION} or {COUNTRY}.",
    # places
    "Our warehouses in {CITY}, {CITY#2} and {CITY#3} will close early on {DATE}.",
    "The team offsite will be in {REGION} this year instead of {CITY}.",
    "Shipping from {COUNTRY} to {COUNTRY#2} usually takes about 10 days.",
    "Weather delays in {CITY} may affect deliveries across {REGION}.",
    # earlier placeholders next to real values
    "Following up on <PERSON_1>'s request: the new contact is {P.full} at {P.email}.",
    "Earlier you wrote to <EMAIL_ADDRESS_1>; the correct address is {EMAIL}.",
    # punctuation around values
    "Send the draft to {EMAIL}.",
    "(cc: {EMAIL}, {EMAIL#2})",
    "Contact:{EMAIL};backup:{EMAIL#2}",
    "From: {P.full} <{P.email}>\nTo: {EMAIL}\nSubject: invoice {ORDER}",
    "Call {PHONE}, or {PHONE#2} after 6 pm.",
    "ssn {SSN:plain} on the I-9 doesn't match the one in Workday",
    "The applicant's Social Security number is {SSN}.",
    "Traffic from {IP4} and {IP4#2} was blocked by the WAF at {TIME}.",
    "Grant read access to {IP6}/128 and to the office range {IP4}/32.",
    # more cards, IBANs, SSNs and IPs, in the same kinds of text
    "Card number: {CARD}\nExpiry: 09/27\nName on card: {P.full}",
    "The chargeback concerns card {CARD} ({P.full}, {CITY}).",
    "Please refund to the card I paid with, {CARD}, not to my bank account.",
    "Please add my partner's card {CARD} as a second payment method - {P.first}",
    "Order {ORDER}: billing name {P.full}, card {CARD}, ship to {CITY}.",
    "Payout account changed for vendor {ORDER}: old IBAN {IBAN}, new IBAN {IBAN#2}.",
    "Salary account of {P.full}: {IBAN}.",
    "Rent goes to {IBAN}, due on the first of each month.",
    "Background check authorization: {P.full}, SSN {SSN}, previous address in {REGION}.",
    "I mistyped my SSN in the portal; the right one is {SSN}.",
    "The 1099 for contractor {P.full} lists SSN {SSN}.",
    "Suspicious logins for {P.email} from {IP6} and {IP}.",
    "nginx: client {IP6} closed the connection while reading the upstream response",
    "Your router's WAN address is {IP4} and the ISP assigned {IP6} to the LAN side.",
    "Geo lookup places {IP:v4_public} in {PLACE}.",
    "Moved the bastion to {IP6}; the old host {IP4} will be decommissioned on {DATE}.",
]

NEGATIVE_TEMPLATES = [
    "Order {ORDER} shipped on 2024-03-14 and should arrive within 3-5 business days.",
    "Please upgrade to version 2.14.3 before Friday; 2.13.x reaches end of life on 30 June.",
    "The invoice total is $1,249.00 (incl. 19% VAT), due 2024-07-31.",
    "ISBN 978-3-16-148410-0 is out of stock; the paperback (ISBN 978-0-306-40615-7) ships in 2 weeks.",
    "Build 10.0.19045.3803 fails to install KB5034441 with error 0x80070643.",
    "Tracking number 1Z999AA10123456784 shows the parcel left the depot at 06:42.",
    "Replace every occurrence of <EMAIL_ADDRESS_1> with the customer's address before sending, and keep "
    "<PERSON_2> as is.",
    "ERROR {TS} worker-3 job=8842117 took 15234 ms (timeout 15000 ms)",
    "```python\nfor i in range(0, 1024, 16):\n    buf[i:i + 16] = bytes(16)\n```",
    "Our Q3 revenue grew 12.5% to EUR 4.2M, with churn down from 3.1% to 2.4%.",
    "Set max_connections=512 and keepalive_timeout=75 in nginx.conf, then reload.",
    "The meeting moved from 10:30 to 14:00 on Tuesday, 12 March 2024.",
    "Please quote PO number 4500012345 on every delivery note.",
    "Use the placeholders <CREDIT_CARD_1> and <IBAN_CODE_1> in the docs, never real values.",
    "Commit 9f2c1e7a4b3d fixed the race in the scheduler; see PR #4821.",
    "The SKU AB-2291-XL is back in stock at 29.99 per unit, minimum order 250 units.",
    "docker run -p 8080:80 -e WORKERS=4 nginx:1.25.3-alpine",
    "Kernel 6.5.0-1014-azure on Ubuntu 22.04.3 LTS; python 3.11.7; pip 23.3.1",
    "Refund ref RF-20240611-0042 for EUR 87.50 was approved by the finance team.",
    "The UUID 3f2504e0-4f89-11d3-9a0c-0305e82c3301 identifies the tenant record.",
    "Flight LH 2412 departs at 07:55 from gate B44; seat 23C, booking class Y.",
    "Temperature readings: 21.4, 21.9, 22.3, 22.8 degrees between 08:00 and 09:00.",
    "SELECT id, created_at FROM orders WHERE total > 1000 ORDER BY created_at DESC LIMIT 50;",
    "Policy number HX-7781-2290-14 renews on 01/09/2025 at a premium of GBP 412.60.",
    "Your verification code is 482913; it expires in 10 minutes.",
    "The patient summary for <PERSON_1> was sent to <EMAIL_ADDRESS_1> on <DATE_TIME_1>.",
    "Latency p50 was 3.4 ms and p99 was 12.8 ms at 2,000 req/s on build 1.8.0-rc.2.",
    "The SHA-256 of the release tarball is 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae.",
    "Room 4.017 on the 4th floor is booked from 9 to 11 for the quarterly review.",
    "Set the timeout to 00:05:00 and retry 3 times with a backoff factor of 1.5.",
    "Case 00012847 was escalated to tier 2 after 48 hours without a response.",
    "The API returned HTTP 429 with Retry-After: 120 and X-RateLimit-Remaining: 0.",
    "Invoice {ORDER} lists 3 x 12.40, 1 x 99.00 and shipping 4.95, total 141.15.",
    "The barcode 4006381333931 on the box does not match the one in the system.",
    "The printer's MAC address is 00:1A:2B:3C:4D:5E and its firmware is 4.2.1.",
    "Cron schedule 0 */6 * * * runs the cleanup job every six hours.",
    "The contract value is USD 2,450,000.00, payable in 4 instalments of 612,500.00.",
    "Error E1045: field 'amount' must be between 0.01 and 99999.99.",
    "Semantic versions 1.0.0-alpha.1, 1.0.0-beta.11 and 1.0.0-rc.1 all precede 1.0.0.",
    "Hi team, the standup is cancelled today; notes are in the usual doc.",
    "Thanks for reaching out! Could you send a screenshot of the error and the steps to reproduce it?",
    "Placeholders such as <PHONE_NUMBER_3>, <US_SSN_1> and <IP_ADDRESS_2> must pass through unchanged.",
    "The Q2 all-hands is on 2024-06-27 at 16:00 CET in the main auditorium.",
    "Parcel weight 2.35 kg, dimensions 40 x 30 x 15 cm, insured value 250.00.",
    "Merge request !312 bumps requests from 2.31.0 to 2.32.3 and urllib3 to 2.2.2.",
    "Monday's release notes mention Kafka 3.7 and Spark 3.5.1 support.",
    "Ticket {TICKET} was closed at {TIME}; the customer confirmed the fix works.",
    "The batch of {AMOUNT} units left the plant at {TS}, lot number 2024-118-07.",
]


# --- rendering --------------------------------------------------------------------------------------

ENTITY_OF_KIND = {
    "P": "PERSON", "EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE", "SSN": "US_SSN", "IP": "IP_ADDRESS", "IP4": "IP_ADDRESS", "IP6": "IP_ADDRESS",
    "CITY": "LOCATION", "COUNTRY": "LOCATION", "REGION": "LOCATION",
}
FILLERS = {"ORDER", "TICKET", "DATE", "TIME", "AMOUNT", "TS", "PORT", "TITLE"}
_TOKEN = re.compile(r"\{(?P<kind>[A-Z0-9]+)(?:#(?P<inst>\d))?(?::(?P<fmt>\w+))?(?:\.(?P<attr>\w+))?\}")


class Deck:
    """Formats dealt in a shuffled cycle, so every format appears about equally often."""

    def __init__(self, items: list[str], rng: random.Random) -> None:
        self._items, self._rng, self._left = items, rng, list[str]()

    def draw(self, prefix: str = "") -> str:
        for attempt in range(2):
            if attempt or not self._left:
                self._left = self._rng.sample(self._items, len(self._items))
            for i, item in enumerate(self._left):
                if item.startswith(prefix):
                    return self._left.pop(i)
        raise ValueError(f"no format starting with {prefix!r}")


@dataclass
class Generator:
    rng: random.Random
    decks: dict[str, Deck] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.rng
        self.decks = {
            "PHONE": Deck(PHONE_FORMATS, r), "CARD": Deck(CARD_FORMATS, r), "IBAN": Deck(IBAN_FORMATS, r),
            "SSN": Deck(SSN_FORMATS, r), "IP": Deck(IP_FORMATS, r),
            "IP4": Deck([f for f in IP_FORMATS if f.startswith("v4")], r),
            "IP6": Deck([f for f in IP_FORMATS if f.startswith("v6")], r),
            "EMAIL": Deck(EMAIL_STYLES, r), "P": Deck([p.full for p in PEOPLE], r),
            "CITY": Deck(CITIES, r), "COUNTRY": Deck(COUNTRIES, r), "REGION": Deck(REGIONS, r),
            "PLACE": Deck([f"{c}|{p}|{k}" for c, p, k in PLACES], r),
            "CITYREGION": Deck([f"{c}|{p}|{k}" for c, p, k in PLACES if k == "region"], r),
        }
        self._people = {p.full: p for p in PEOPLE}

    def _value(self, kind: str, fmt: str) -> Value:
        deck = self.decks[kind]
        if kind in ("CITY", "COUNTRY", "REGION"):
            return deck.draw(), kind.lower()
        fmt = deck.draw(fmt)
        if kind == "PHONE":
            return _phone(fmt, self.rng), fmt
        if kind == "CARD":
            return _card(fmt, self.rng), fmt
        if kind == "IBAN":
            return _iban(fmt, self.rng), fmt
        if kind == "SSN":
            return _ssn(fmt, self.rng), fmt
        if kind.startswith("IP"):
            return _ip(fmt, self.rng), fmt
        if kind == "EMAIL":
            if self.rng.random() < 0.15:
                return f"{self.rng.choice(ROLE_LOCALS)}@{self.rng.choice(WORK_DOMAINS)}", "role"
            person = self._people[self.decks["P"].draw()]
            return email_for(person, fmt, self.rng), fmt
        raise ValueError(kind)

    def render(self, template: str) -> tuple[str, list[dict[str, object]]]:
        people: dict[str, Person] = {}
        values: dict[str, Value] = {}
        text, spans, pos = "", list[dict[str, object]](), 0
        for m in _TOKEN.finditer(template):
            text += template[pos:m.start()]
            pos = m.end()
            kind, inst, fmt, attr = m["kind"], m["inst"] or "1", m["fmt"] or "", m["attr"]
            key = f"{kind}#{inst}"
            if kind in FILLERS:
                text += _filler(kind, self.rng)
                continue
            if kind in ("PLACE", "CITYREGION"):  # "City, Country" or "City, Region": two spans
                city, wider, wider_kind = self.decks[kind].draw().split("|")
                for j, (part, part_format) in enumerate(((city, "city"), (wider, wider_kind))):
                    text += ", " if j else ""
                    spans.append({"start": len(text), "end": len(text) + len(part), "entity": "LOCATION",
                                  "format": part_format})
                    text += part
                continue
            if kind == "P":
                if key not in people:
                    taken = {p.full for p in people.values()}
                    while (name := self.decks["P"].draw()) in taken:
                        pass
                    people[key] = self._people[name]
                person = people[key]
                if attr == "email":
                    if f"{key}.email" not in values:
                        style = self.decks["EMAIL"].draw()
                        values[f"{key}.email"] = (email_for(person, style, self.rng), style)
                    value, entity = values[f"{key}.email"], "EMAIL_ADDRESS"
                else:
                    if attr not in ("full", "first", "last"):
                        raise ValueError(f"bad attribute in {m[0]}")
                    value, entity = (getattr(person, attr), f"{person.culture}:{attr}"), "PERSON"
            else:
                if kind not in ENTITY_OF_KIND:
                    raise ValueError(f"unknown token {m[0]}")
                if key not in values:
                    taken_values = {v for v, _ in values.values()}
                    while (drawn := self._value(kind, fmt))[0] in taken_values:
                        pass
                    values[key] = drawn
                value, entity = values[key], ENTITY_OF_KIND[kind]
            start = len(text)
            text += value[0]
            spans.append({"start": start, "end": len(text), "entity": entity, "format": value[1]})
        text += template[pos:]
        return text, spans


def generate(seed: int = SEED) -> list[dict[str, object]]:
    """The whole set, in file order: ``pii-001``… then ``neg-001``…; same seed, same set."""
    gen = Generator(random.Random(seed))
    items: list[dict[str, object]] = []
    for i in range(PII_ROUNDS * len(PII_TEMPLATES)):
        text, spans = gen.render(PII_TEMPLATES[i % len(PII_TEMPLATES)])
        items.append({"id": f"pii-{i + 1:03d}", "text": text, "spans": spans})
    for i, template in enumerate(NEGATIVE_TEMPLATES):
        text, spans = gen.render(template)
        if spans:
            raise ValueError(f"negative template has PII tokens: {template!r}")
        items.append({"id": f"neg-{i + 1:03d}", "text": text, "spans": []})
    return items


def dumps(items: list[dict[str, object]]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    parser.add_argument("--out", type=Path, default=DATA_FILE)
    args = parser.parse_args(argv)
    content = dumps(generate())
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == content
        print("up to date" if same else f"{args.out} differs from the generator's output")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(content, encoding="utf-8")
    print(f"wrote {content.count(chr(10))} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

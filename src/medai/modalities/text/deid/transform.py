"""Turning found PHI into safe text: ``redact`` (``[REDACTED]``), ``tag`` (``[PERSON]``) or ``surrogate``
(realistic stand-ins).

Surrogates are keyed by a secret and the patient: the same name gives the same stand-in within a patient (name
by name-part, so "Vanessa" and "Vanessa P. Hertzog" stay one person), every date of a patient moves by the
same number of days (intervals are kept; formats too), ages over 89 become "90+" (Safe Harbor), ZIP codes keep
their first three digits unless those cover under 20,000 people (then "000"), and numbers keep their shape.
A bare year is kept (Safe Harbor allows it). The report lists each span found with its type and offsets in
the input and in the output, never the text it replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from medai.errors import MedAIError
from medai.modalities.text.deid.detect import Finding

METHODS = ("redact", "tag", "surrogate")
# ZIP-3 areas with 20,000 people or fewer (2000 census), which Safe Harbor turns into 000
RESTRICTED_ZIP3 = {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879",
                   "884", "890", "893"}
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre"]
MAX_SHIFT_DAYS = 365


@dataclass
class Surrogates:
    """Per-patient consistent stand-ins, keyed by ``secret``."""

    secret: bytes
    dayfirst: bool = False
    memory: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def _digest(self, *parts: str) -> bytes:
        return hmac.new(self.secret, "\x1f".join(parts).encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def _int(self, *parts: str) -> int:
        return int.from_bytes(self._digest(*parts)[:8], "big")

    def date_offset(self, patient: str) -> int:
        """Days every date of ``patient`` moves by: between -365 and -1, never 0."""
        return -1 - self._int("date-offset", patient) % MAX_SHIFT_DAYS

    def _faker(self, *parts: str):
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(self._int(*parts))
        return fake

    def replace(self, kind: str, value: str, patient: str) -> str:
        key = (patient, kind, value.strip().lower())
        if key not in self.memory:
            self.memory[key] = self._make(kind, value, patient)
        return self.memory[key]

    def _make(self, kind: str, value: str, patient: str) -> str:
        if kind == "PERSON":
            return self.name(value, patient)
        if kind == "DATE_TIME":
            shifted = shift_date(value, self.date_offset(patient), self.dayfirst)
            return shifted if shifted is not None else "[DATE]"
        if kind == "AGE":
            digits = re.sub(r"\D", "", value)
            return "90+" if digits and int(digits) > 89 else value
        if kind == "ZIP_CODE":
            return zip3(value)
        fake = self._faker(kind, patient, value.strip().lower())
        makers = {"EMAIL_ADDRESS": fake.email, "URL": lambda: "https://example.org/" + fake.slug(),
                  "IP_ADDRESS": fake.ipv4_private, "LOCATION": fake.city, "GPE": fake.city,
                  "STREET_ADDRESS": fake.street_address, "ORGANIZATION": fake.company}
        if kind in makers:
            return makers[kind]()
        if any(ch.isdigit() for ch in value):
            return self.same_shape(value, patient, kind)
        return f"[{kind}]"

    def name(self, value: str, patient: str) -> str:
        """A stand-in name, part by part, so that every mention of a name part maps the same way."""
        parts = re.findall(r"\w+|\W+", value)
        out, first = [], True
        for part in parts:
            if not part[0].isalnum():
                out.append(part)
                continue
            key = (patient, "NAME_PART", part.lower())
            if key not in self.memory:
                fake = self._faker("name", patient, part.lower())
                if len(part) == 1:
                    self.memory[key] = fake.random_uppercase_letter()
                else:
                    made = fake.first_name() if first else fake.last_name()
                    self.memory[key] = made.upper() if part.isupper() else made
            out.append(self.memory[key])
            first = False
        return "".join(out)

    def same_shape(self, value: str, patient: str, kind: str) -> str:
        digest = self._digest("shape", kind, patient, value)
        out = []
        for i, ch in enumerate(value):
            byte = digest[i % len(digest)]
            if ch.isdigit():
                out.append(str(byte % 10))
            elif ch.isalpha():
                letter = chr(ord("A") + byte % 26)
                out.append(letter if ch.isupper() else letter.lower())
            else:
                out.append(ch)
        return "".join(out)


def zip3(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 5:
        return "00000"
    head = digits[:3]
    return ("000" if head in RESTRICTED_ZIP3 else head) + "00"


_NUMERIC = re.compile(r"^(\d{1,4})([/\-.])(\d{1,2})\2(\d{1,4})$")
_NAMED = re.compile(r"^(?:(?P<d1>\d{1,2})(?:st|nd|rd|th)?(?:\s+(?:of|de))?\s+(?P<m1>[A-Za-zé]+)\.?,?|"
                    r"(?P<m2>[A-Za-zé]+)\.?\s+"
                    r"(?P<d2>\d{1,2})(?:st|nd|rd|th)?,?|(?P<m3>[A-Za-zé]+)\.?,?\s+(?:of\s+|de\s+)?)"
                    r"(?:\s*(?:de\s+)?(?P<y>\d{2,4}))?$", re.IGNORECASE)


def _month_index(word: str) -> tuple[int, list[str]] | None:
    w = word.lower().rstrip(".")
    for names in (MONTHS_EN, MONTHS_ES):
        for k, name in enumerate(names):
            if len(w) >= 3 and name.lower().startswith(w):
                return k + 1, names
    return None


def _ordinal(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def shift_date(value: str, days: int, dayfirst: bool = False) -> str | None:
    """``value`` (a date as written) moved by ``days``, written the same way; ``None`` when it is not a date
    this can read. A bare year stays as it is."""
    text = value.strip()
    if re.fullmatch(r"\d{4}", text):
        return value
    if m := _NUMERIC.match(text):
        a, sep, b, c = m.group(1), m.group(2), m.group(3), m.group(4)
        if len(a) == 4:
            order = ("y", "m", "d")
        elif int(a) > 12 or (dayfirst and int(b) <= 12):
            order = ("d", "m", "y")
        else:
            order = ("m", "d", "y")
        parts = dict(zip(order, (a, b, c), strict=True))
        try:
            year = int(parts["y"]) + (2000 if len(parts["y"]) == 2 and int(parts["y"]) < 50 else
                                       1900 if len(parts["y"]) == 2 else 0)
            moved = date(year, int(parts["m"]), int(parts["d"])) + timedelta(days=days)
        except ValueError:
            return None
        values = {"y": moved.year if len(parts["y"]) == 4 else moved.year % 100, "m": moved.month, "d": moved.day}
        written = [str(values[k]).zfill(len(parts[k]) if k != "y" else len(parts["y"])) for k in order]
        return value.replace(text, sep.join(written))
    if m := _NAMED.match(text):
        month_word = m.group("m1") or m.group("m2") or m.group("m3")
        found = _month_index(month_word)
        if found is None:
            return None
        month, names = found
        day = int(m.group("d1") or m.group("d2") or 15)
        year_text = m.group("y")
        year = int(year_text) if year_text and len(year_text) == 4 else 2000
        try:
            moved = date(year, month, day) + timedelta(days=days)
        except ValueError:
            return None
        name = names[moved.month - 1]
        if len(month_word.rstrip(".")) <= 3:
            name = name[:3]
        if month_word[:1].isupper():
            name = name[:1].upper() + name[1:]
        out = text
        out = re.sub(re.escape(month_word), name, out, count=1)
        if m.group("d1") or m.group("d2"):
            out = re.sub(r"\b\d{1,2}(st|nd|rd|th)?\b", lambda d: str(moved.day) + (_ordinal(moved.day) if d.group(1)
                                                                                  else ""), out, count=1)
        if year_text and len(year_text) == 4:
            out = re.sub(rf"\b{year_text}\b", str(moved.year), out, count=1)
        return value.replace(text, out)
    return None


def transform(text: str, findings: list[Finding], method: str, patient: str = "",
              surrogates: Surrogates | None = None) -> tuple[str, list[dict]]:
    """The de-identified text and the report: per span its type, offsets in the input and in the output."""
    if method not in METHODS:
        raise MedAIError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "surrogate" and surrogates is None:
        raise MedAIError("surrogates need the installation's de-identification secret")
    pieces, report, position, shift = [], [], 0, 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < position:
            continue
        original = text[f.start:f.end]
        if method == "redact":
            new = "[REDACTED]"
        elif method == "tag":
            new = f"[{f.type}]"
        else:
            new = surrogates.replace(f.type, original, patient)
        pieces.append(text[position:f.start])
        out_start = f.start + shift
        pieces.append(new)
        shift += len(new) - len(original)
        report.append({"start": f.start, "end": f.end, "type": f.type, "source": f.source,
                       "score": round(f.score, 4), "output_start": out_start, "output_end": out_start + len(new),
                       "changed": new != original})
        position = f.end
    pieces.append(text[position:])
    return "".join(pieces), report

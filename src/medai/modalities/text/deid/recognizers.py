"""Pattern recognizers for every HIPAA Safe Harbor identifier (45 CFR 164.514(b)(2)), as Presidio recognizers.

Presidio's own pattern recognizers cover e-mail, URL, IP address, credit card, IBAN, US SSN, phone numbers and
a few licence formats; these add what a clinical note holds besides: dates in every common form, ages, street
addresses (which no Presidio recognizer finds), ZIP codes, medical record, health-plan, account, licence,
vehicle and device numbers, biometric and photograph references, and any other long identifying number.
Context words raise a pattern's score where the bare pattern is ambiguous.
"""

from __future__ import annotations

import regex
from presidio_analyzer import Pattern, PatternRecognizer

FLAGS = regex.DOTALL | regex.MULTILINE  # case-sensitive (Presidio's default ignores case): "Dr" is not "dr"

MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
          r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|enero|febrero|marzo|abril|mayo|junio|julio|agosto|"
          r"se?ptiembre|octubre|noviembre|diciembre)")
ORDINAL = r"(?:\d{1,2}(?:st|nd|rd|th)?)"
STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|"
                 r"Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Crescent|Cres|Alley|Row|Close|Gardens|"
                 r"Hill|Park|Plaza|Walk|Grove|Green|Mews|Route|Rte|Via|Calle|Avenida|Plaza|Paseo|Carrer|Rua|"
                 r"[A-Za-zÀ-ÿ]+(?:straße|strasse|str\.|weg|gasse|platz|vej|gade|gatan|vägen|katu|tie|laan|straat))")

# (entity, name, regex, score, context words)
PATTERNS: list[tuple[str, str, str, float, list[str]]] = [
    # 3. dates (all elements but the year are identifiers; a bare year is found too and kept by surrogates)
    ("DATE_TIME", "numeric date", r"\b\d{1,4}[/\-.]\d{1,2}[/\-.]\d{1,4}\b", 0.6, ["date", "born", "admitted", "dob"]),
    ("DATE_TIME", "day month year", rf"\b{ORDINAL}(?:\s+of)?\s+{MONTHS}\.?,?(?:\s+(?:de\s+)?\d{{2,4}})?\b", 0.7, []),
    ("DATE_TIME", "month day year", rf"\b{MONTHS}\.?\s+{ORDINAL}(?:,?\s+\d{{4}})?\b", 0.7, []),
    ("DATE_TIME", "month year", rf"\b{MONTHS}\.?,?\s+(?:of\s+|de\s+)?\d{{4}}\b", 0.7, []),
    ("DATE_TIME", "iso timestamp", r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?\b", 0.8, []),
    ("DATE_TIME", "year", r"\b(?:1[89]\d\d|20\d\d)\b", 0.3, ["year", "since", "in", "born", "founded", "date"]),
    # ages (over 89 must go; every age is found, surrogates keep those up to 89)
    ("AGE", "age words", r"\b\d{1,3}(?=[\s-]*(?:years?|yrs?|y/?o|year-old|años|anos)\b)", 0.7, []),
    ("AGE", "aged", r"(?<=\baged\s)\d{1,3}\b|(?<=\bage\s)\d{1,3}\b|(?<=\bage:\s)\d{1,3}\b", 0.7, []),
    ("AGE", "turn", r"(?<=\bturn\s)\d{1,3}\b|(?<=\bturned\s)\d{1,3}\b|(?<=\bturning\s)\d{1,3}\b", 0.6, []),
    # 2. geography below the state
    ("STREET_ADDRESS", "number street",
     rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-ZÀ-Þ][\w'À-ÿ.-]*\s+){{0,4}}{STREET_SUFFIX}\b\.?"
     r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#)\s*\w+)?", 0.6, ["address", "live", "lives", "street"]),
    ("STREET_ADDRESS", "street number",
     rf"\b(?:[A-ZÀ-Þ][\w'À-ÿ.-]*\s+){{0,3}}{STREET_SUFFIX}\.?\s+\d{{1,5}}[A-Za-z]?\b"
     r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#)\s*\w+)?", 0.5, ["address", "live", "street"]),
    ("STREET_ADDRESS", "po box", r"\b(?:P\.?\s?O\.?\s?Box|Postfach|Apartado)\s+\d+\b", 0.7, []),
    ("ZIP_CODE", "us zip", r"\b\d{5}(?:-\d{4})?\b", 0.2, ["zip", "zipcode", "postal", "postcode", "cp"]),
    ("ZIP_CODE", "state zip", r"(?<=\b[A-Z]{2}\s)\d{5}(?:-\d{4})?\b", 0.6, []),
    # 4-5. telephone and fax
    ("PHONE_NUMBER", "phone", r"(?<!\w)(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?!\w)",
     0.3, ["phone", "tel", "telephone", "call", "fax", "mobile", "cell", "contact", "number", "teléfono"]),
    ("PHONE_NUMBER", "phone extension", r"(?<!\w)\d{3}[.-]\d{3}[.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)", 0.6,
     []),
    # 8-13. record, plan, account, licence, vehicle and device numbers
    ("MEDICAL_RECORD_NUMBER", "mrn", r"(?i)(?<=\b(?:mrn|nhc|medical record(?: number)?|record no\.?|chart)[:#\s]{1,3})"
     r"[A-Z0-9-]{4,}\b", 0.8, []),
    ("HEALTH_PLAN_NUMBER", "health plan",
     r"(?i)(?<=\b(?:member id|policy(?: number| no\.?)?|beneficiary(?: number)?|insurance(?: id| number)?|"
     r"nass|plan id)[:#\s]{1,3})[A-Z0-9 -]{5,20}\d\b", 0.8, []),
    ("ACCOUNT_NUMBER", "account", r"(?i)(?<=\b(?:account|acct|acc)(?: number| no\.?)?[:#\s]{1,3})[A-Z0-9-]{4,}\b",
     0.8, []),
    ("LICENSE_NUMBER", "licence", r"(?i)(?<=\b(?:licen[cs]e|certificate|npi|dea|registration|nºcol|colegiado)"
     r"(?: number| no\.?)?[:#\s]{1,3})[A-Z0-9 -]{4,20}\d\b", 0.8, []),
    ("VEHICLE_ID", "vin", r"\b[A-HJ-NPR-Z0-9]{17}\b", 0.4, ["vin", "vehicle", "car", "chassis"]),
    ("VEHICLE_ID", "plate",
     r"(?i)(?<=\b(?:license plate|plate|matrícula|registration plate)[:#\s]{1,3})[A-Z0-9 -]{4,10}\b", 0.8, []),
    ("DEVICE_ID", "device", r"(?i)(?<=\b(?:serial(?: number| no\.?)?|s/n|device(?: id)?|udi|imei)[:#\s]{1,3})"
     r"[A-Z0-9-]{4,}\b", 0.8, []),
    # 16-17. biometric identifiers and photographs
    ("BIOMETRIC", "biometric", r"(?i)\b(?:finger|voice|retina(?:l)?|iris|palm)[\s-]?(?:print|scan|pattern)s?\b", 0.6,
     []),
    ("PHOTO", "photograph", r"(?i)\b(?:full[\s-]face\s+)?(?:photo(?:graph)?s?|headshot|selfie)\b", 0.4,
     ["face", "patient", "attached", "full"]),
    # 18. any other unique identifying number
    ("ID_NUMBER", "long number", r"(?<![\w.,/-])(?=[A-Z0-9-]*\d{4})[A-Z0-9][A-Z0-9-]{4,}(?![\w,/-]|\.\d)", 0.4,
     ["id", "number", "no", "identifier", "code"]),
]


def safe_harbor_recognizers(language: str = "en") -> list[PatternRecognizer]:
    by_entity: dict[str, list] = {}
    for entity, name, pattern, score, context in PATTERNS:
        by_entity.setdefault(entity, []).append((Pattern(name, pattern, score), context))
    out = []
    for entity, items in by_entity.items():
        context = sorted({word for _, words in items for word in words})
        out.append(PatternRecognizer(supported_entity=entity, name=f"medai_{entity.lower()}",
                                     patterns=[p for p, _ in items], context=context or None,
                                     supported_language=language, global_regex_flags=FLAGS))
    return out

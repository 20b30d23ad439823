"""Routing rules: which registered image model a series gets, from its DICOM attributes.

A rules file is TOML; the first rule that fits a series wins, and a series no rule fits is reported (never forced
through a model)::

    [[rule]]
    name = "chest radiographs"
    model = "xray"                     # registered NAME or NAME:VERSION
    modality = ["CR", "DX"]            # (0008,0060), any of
    body_part = ["CHEST"]              # (0018,0015), any of, case-insensitive
    sop_class = ["1.2.840.10008.5.1.4.1.1.1.1"]   # UIDs (or their names)
    series_description = "*chest*"     # glob on (0008,103E), case-insensitive
    min_size = 28                      # rows and columns at least ...
    max_size = 4096                    # ... and at most
    min_instances = 1                  # images in the series at least (a 3D model needs 2 or more slices)

Without a rules file, ``--model NAME`` routes every image series to one model.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai.errors import MedAIError

KEYS = {"name", "model", "modality", "body_part", "sop_class", "series_description", "min_size", "max_size",
        "min_instances"}


def _list(value: Any, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise MedAIError(f"{where}: expected a text or a list of texts")
    return tuple(v.strip() for v in values)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MedAIError(f"{where}: expected a whole number >= 1, got {value!r}")
    return value


def _sop_uid(value: str) -> str:
    from pydicom.uid import UID, UID_dictionary

    if value[0].isdigit():
        return value
    for uid, entry in UID_dictionary.items():
        if entry[0].lower() == value.lower():
            return str(UID(uid))
    raise MedAIError(f"sop_class {value!r}: not a UID nor the name of a DICOM SOP class")


@dataclass(frozen=True)
class Rule:
    name: str
    model: str
    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    sop_class: tuple[str, ...] = ()
    series_description: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    min_instances: int = 1

    @classmethod
    def from_dict(cls, raw: dict[str, Any], index: int) -> Rule:
        where = f"rule {index + 1}" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str) else "")
        unknown = set(raw) - KEYS
        if unknown:
            raise MedAIError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}")
        if not isinstance(raw.get("model"), str) or not raw["model"].strip():
            raise MedAIError(f"{where}: 'model' (a registered model NAME or NAME:VERSION) is required")
        rule = cls(
            name=str(raw.get("name") or f"rule {index + 1}"), model=raw["model"].strip(),
            modality=tuple(v.upper() for v in _list(raw["modality"], f"{where}: modality"))
            if "modality" in raw else (),
            body_part=tuple(v.upper() for v in _list(raw["body_part"], f"{where}: body_part"))
            if "body_part" in raw else (),
            sop_class=tuple(_sop_uid(v) for v in _list(raw["sop_class"], f"{where}: sop_class"))
            if "sop_class" in raw else (),
            series_description=_list(raw["series_description"], f"{where}: series_description")[0]
            if "series_description" in raw else None,
            min_size=_int(raw["min_size"], f"{where}: min_size") if "min_size" in raw else None,
            max_size=_int(raw["max_size"], f"{where}: max_size") if "max_size" in raw else None,
            min_instances=_int(raw.get("min_instances", 1), f"{where}: min_instances"),
        )
        if rule.min_size and rule.max_size and rule.min_size > rule.max_size:
            raise MedAIError(f"{where}: min_size {rule.min_size} is above max_size {rule.max_size}")
        return rule

    def misfit(self, attrs: dict[str, Any]) -> str | None:
        """Why this rule does not fit a series (None when it fits)."""
        if self.modality and attrs["modality"] not in self.modality:
            return f"Modality {attrs['modality'] or '(none)'} not in {list(self.modality)}"
        if self.body_part and attrs["body_part"] not in self.body_part:
            return f"BodyPartExamined {attrs['body_part'] or '(none)'} not in {list(self.body_part)}"
        if self.sop_class and attrs["sop_class"] not in self.sop_class:
            return f"SOP Class {attrs['sop_class']} not in {list(self.sop_class)}"
        if self.series_description and not fnmatch.fnmatch(attrs["series_description"].lower(),
                                                          self.series_description.lower()):
            return f"SeriesDescription does not match {self.series_description!r}"
        size = min(attrs["rows"], attrs["columns"]), max(attrs["rows"], attrs["columns"])
        if self.min_size and size[0] < self.min_size:
            return f"image {attrs['rows']}x{attrs['columns']} smaller than min_size {self.min_size}"
        if self.max_size and size[1] > self.max_size:
            return f"image {attrs['rows']}x{attrs['columns']} larger than max_size {self.max_size}"
        if attrs["instances"] < self.min_instances:
            return f"{attrs['instances']} image(s), fewer than min_instances {self.min_instances}"
        return None


@dataclass
class Decision:
    model: str | None
    rule: str | None
    reason: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return self.model is not None


class Router:
    def __init__(self, rules: list[Rule], source: str = "rules") -> None:
        if not rules:
            raise MedAIError(f"{source}: no [[rule]] entries")
        self.rules = rules
        self.source = source
        self._dims: dict[str, int] = {}

    @classmethod
    def load(cls, path: Path) -> Router:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MedAIError(f"rules file {path} not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MedAIError(f"rules file {path}: not valid TOML ({exc})") from None
        unknown = set(raw) - {"rule"}
        if unknown or not isinstance(raw.get("rule"), list):
            raise MedAIError(f"rules file {path}: expected only [[rule]] tables, found {sorted(raw) or 'nothing'}")
        return cls([Rule.from_dict(r, i) for i, r in enumerate(raw["rule"])], str(path))

    @classmethod
    def single(cls, model: str) -> Router:
        return cls([Rule(name=f"every image series -> {model}", model=model)], "--model")

    def check_models(self) -> dict[str, int]:
        """Every model the rules name is registered and takes images: its spatial dimensions (2 or 3)."""
        for rule in self.rules:
            self.model_dims(rule.model, f"rule {rule.name!r}")
        return dict(self._dims)

    def model_dims(self, ref: str, where: str = "") -> int:
        if ref not in self._dims:
            from medai.models.artifact import read_model_json
            from medai.registry import Registry

            try:
                record = Registry().resolve(ref)
            except MedAIError as exc:
                raise MedAIError(f"{self.source}: {where}: {exc}") from None
            meta = read_model_json(Path(record.artifact_path), verify=False)
            schema = meta.get("input_schema") or {}
            if meta.get("input_contract") != "files" or schema.get("kind") != "image":
                raise MedAIError(f"{self.source}: {where}: model {ref!r} does not take images")
            self._dims[ref] = int(schema.get("spatial_dims", 2))
        return self._dims[ref]

    def route(self, attrs: dict[str, Any]) -> Decision:
        if not attrs.get("has_pixels", True):
            return Decision(None, None, "no pixel data (not an image series)", attrs)
        reasons = []
        for rule in self.rules:
            why = rule.misfit(attrs)
            if why is None and self.model_dims(rule.model, f"rule {rule.name!r}") == 3 \
                    and attrs["instances"] < 2 and attrs["frames"] < 2:
                why = "a 3D model needs a volume (several slices or frames)"
            if why is None:
                return Decision(rule.model, rule.name, f"rule {rule.name!r}", attrs)
            reasons.append(f"{rule.name}: {why}")
        return Decision(None, None, "no rule fits (" + "; ".join(reasons) + ")", attrs)


def series_attributes(datasets: list) -> dict[str, Any]:
    """What routing looks at, from the instances of one series (headers are enough)."""
    first = datasets[0]
    text = lambda kw: str(first.get(kw, "") or "").strip()  # noqa: E731
    return {
        "modality": text("Modality").upper(), "body_part": text("BodyPartExamined").upper(),
        "sop_class": text("SOPClassUID"), "series_description": text("SeriesDescription"),
        "rows": int(first.get("Rows", 0) or 0), "columns": int(first.get("Columns", 0) or 0),
        "frames": int(first.get("NumberOfFrames", 1) or 1), "instances": len(datasets),
        "has_pixels": "PixelData" in first or bool(first.get("Rows")),
    }


def dry_run(source: Path, router: Router) -> list[dict[str, Any]]:
    """Which model each series under ``source`` (a folder or file of DICOM instances) would get."""
    import warnings

    import pydicom

    from medai.data.dicom import is_dicom

    source = Path(source)
    if not source.exists():
        raise MedAIError(f"{source}: not found; expected a DICOM file or a folder of them")
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    series: dict[tuple[str, str], list] = {}
    for path in files:
        if not is_dicom(path):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception as exc:  # noqa: BLE001 - one unreadable file is reported, not fatal
                series.setdefault(("?", str(path)), []).append(exc)
                continue
        series.setdefault((str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))), []).append(ds)
    if not series:
        raise MedAIError(f"{source}: no DICOM files found")
    rows = []
    for (study, uid), items in series.items():
        if isinstance(items[0], Exception):
            rows.append({"study": study, "series": uid, "model": None, "rule": None, "instances": 1,
                         "reason": f"unreadable DICOM ({items[0]})"})
            continue
        decision = router.route(series_attributes(items))
        a = decision.attributes
        rows.append({"study": study, "series": uid, "modality": a["modality"], "body_part": a["body_part"],
                     "instances": a["instances"], "size": f"{a['rows']}x{a['columns']}", "model": decision.model,
                     "rule": decision.rule, "reason": decision.reason})
    return rows

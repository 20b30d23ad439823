"""FHIR R4 in and out (fhir.resources R4B models, wire-compatible with R4 for these resources): a
Bundle (Patient + Observations) becomes one model input record, and a prediction becomes a ``RiskAssessment``.

Observations map to model columns by LOINC code through a per-model mapping kept in the database
(table ``model_loinc_maps``; set by an admin through ``PUT /v1/admin/models/{name}/loinc-mapping``).
The Patient's ``gender`` and ``birthDate`` can map to a sex column and an age column (years).

Units (issue 9, finding 3): the mapping's ``units`` name the UCUM unit each column is in (as the model was
trained). A quantity is converted to it with pint and UCUM definitions (``ucumvert``); a quantity whose unit
cannot be converted (``kg`` for a length), is not UCUM, or is missing where a unit is declared is refused
with a 422 naming the observation; so is a quantity *with* a unit for a column whose unit the mapping does
not declare (it cannot be interpreted). Duplicates: several Observations for one code are resolved to the
latest by effective time (``effective[x]``, else ``issued``) and the choice is stated in the
RiskAssessment's ``note``; when no single latest one exists the Bundle is refused.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, session_factory
from medai.errors import MedAIError

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"


class ModelLoincMap(Base):
    __tablename__ = "model_loinc_maps"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    mapping: Mapped[dict] = mapped_column(JSON, nullable=False)


class LoincMaps:
    def __init__(self, url: str | None = None) -> None:
        self._sessions = session_factory(url)

    def get(self, model: str) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.get(ModelLoincMap, model)
            return None if row is None else dict(row.mapping)

    def set(self, model: str, mapping: dict[str, Any]) -> dict[str, Any]:  # noqa: A003
        with self._sessions.begin() as session:
            row = session.get(ModelLoincMap, model)
            if row is None:
                session.add(ModelLoincMap(model=model, mapping=mapping))
            else:
                row.mapping = mapping
        return mapping

    def names(self) -> list[str]:
        with self._sessions() as session:
            return list(session.scalars(select(ModelLoincMap.model)))


def check_risk_model(model, name: str) -> None:
    """A RiskAssessment needs a binary model that takes records of named (numeric or categorical) fields."""
    from medai.modalities import RECORDS

    if model.input_contract != RECORDS or model.kind != "binary":
        raise MedAIError(f"model {name!r} is not a binary risk model on records ({model.kind}, takes "
                         f"{model.input_contract}); FHIR RiskAssessment does not apply")


def check_mapping(mapping: dict[str, Any], input_schema: list[dict[str, Any]]) -> None:
    """A mapping may only name columns the model takes; declared units must be UCUM and belong to numeric
    columns the mapping feeds."""
    columns = {c["name"]: c for c in input_schema}
    targets = dict(mapping.get("mapping") or {})
    for key in ("gender_column", "age_column"):
        if mapping.get(key):
            targets[f"Patient.{key}"] = mapping[key]
    unknown = sorted({col for col in targets.values() if col not in columns})
    if unknown:
        raise MedAIError(f"LOINC mapping names column(s) the model does not take: {unknown}")
    mapped = set((mapping.get("mapping") or {}).values())
    for column, unit in (mapping.get("units") or {}).items():
        if column not in mapped:
            raise MedAIError(f"units: column {column!r} is not fed by any LOINC code of the mapping")
        if columns[column].get("kind") != "numeric":
            raise MedAIError(f"units: column {column!r} is not numeric; only numeric columns have units")
        ucum_unit(unit, f"units: the unit of column {column!r}")


@functools.lru_cache(maxsize=1)
def _ucum_registry():
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@functools.lru_cache(maxsize=512)
def _parse_ucum(code: str):
    return _ucum_registry().from_ucum(code)


def ucum_unit(code: Any, what: str):
    """The pint unit of a UCUM code; :class:`MedAIError` naming ``what`` when it is not UCUM."""
    if not isinstance(code, str) or not code.strip() or len(code) > 64:
        raise MedAIError(f"{what}: expected a UCUM unit code such as 'mm' or 'mg/dL'")
    try:
        return _parse_ucum(code.strip())
    except Exception:  # noqa: BLE001 - lark/pint raise many kinds
        raise MedAIError(
            f"{what}: {code.strip()[:64]!r} is not a UCUM unit code (e.g. 'mm', 'mg/dL', '[in_i]')"
        ) from None


def convert_quantity(value: float, unit_code: str, target_code: str, what: str) -> float:
    """``value`` in ``unit_code`` expressed in ``target_code`` (both UCUM); :class:`MedAIError` naming
    ``what`` when the units are not UCUM or not of the same kind."""
    source = ucum_unit(unit_code, f"{what}: unit")
    target = ucum_unit(target_code, f"{what}: the model's unit")
    registry = _ucum_registry()
    try:
        converted = registry.Quantity(value, source).to(target).magnitude
    except Exception:  # noqa: BLE001 - DimensionalityError, OffsetUnitCalculusError, ...
        raise MedAIError(
            f"{what}: unit {unit_code!r} cannot be converted to {target_code!r}, the unit the model takes"
        ) from None
    converted = float(converted)
    if not math.isfinite(converted):
        raise MedAIError(f"{what}: the value is out of range after conversion to {target_code!r}")
    return converted


def _age(birth: date, on: date) -> float:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return float(years)


def _observation_value(obs) -> Any:
    if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        return float(obs.valueQuantity.value)
    if obs.valueCodeableConcept is not None:
        concept = obs.valueCodeableConcept
        if concept.coding:
            return concept.coding[0].code or concept.coding[0].display
        return concept.text
    for attr in ("valueString", "valueInteger", "valueBoolean"):
        value = getattr(obs, attr, None)
        if value is not None:
            return float(value) if attr == "valueInteger" else value
    return None


def _quantity_unit(obs) -> str | None:
    """The UCUM code of an Observation's valueQuantity (``code`` when coded in UCUM, else ``unit``)."""
    quantity = obs.valueQuantity
    if quantity is None:
        return None
    if quantity.code and (quantity.system in (None, UCUM_SYSTEM)):
        return str(quantity.code)
    if quantity.unit:
        return str(quantity.unit)
    return None


def _as_time(value: Any) -> datetime | None:
    """An Observation time (datetime, date or partial date text) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value)
    try:
        parts = [int(p) for p in text[:10].split("-")]
        while len(parts) < 3:
            parts.append(1)
        return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
    except (ValueError, TypeError):
        return None


def _effective_time(obs) -> datetime | None:
    for attr in ("effectiveDateTime", "effectiveInstant"):
        found = _as_time(getattr(obs, attr, None))
        if found is not None:
            return found
    period = getattr(obs, "effectivePeriod", None)
    if period is not None:
        found = _as_time(period.end) or _as_time(period.start)
        if found is not None:
            return found
    return _as_time(getattr(obs, "issued", None))


def parse_bundle(payload: dict[str, Any]):
    """A validated fhir.resources Bundle; :class:`MedAIError` naming the problem otherwise."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    if not isinstance(payload, dict) or payload.get("resourceType") != "Bundle":
        raise MedAIError("expected a FHIR R4 Bundle (resourceType 'Bundle') holding a Patient and Observations")
    try:
        return Bundle.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MedAIError(f"invalid FHIR Bundle at {where or 'top level'}: {first.get('msg')}") from None
    except Exception:  # noqa: BLE001 - fhir.resources raises KeyError for an unknown resourceType, ...
        kinds = sorted(
            {
                str(e.get("resource", {}).get("resourceType"))[:40]
                for e in payload.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            }
        )
        raise MedAIError(
            f"invalid FHIR Bundle: an entry is not a valid FHIR R4 resource (resource types found: {kinds})"
        ) from None


def bundle_to_record(bundle, mapping: dict[str, Any], input_schema: list[dict[str, Any]]):
    """(record, patient reference, observation references, notes). Missing observations, incompatible or
    missing units and unresolvable duplicates -> :class:`MedAIError` naming the observation, the LOINC code
    and the column. ``notes`` say how duplicates were resolved."""
    codes = dict(mapping.get("mapping") or {})
    units = dict(mapping.get("units") or {})
    record: dict[str, Any] = {}
    patient_ref: str | None = None
    patient = None
    found: dict[str, list[tuple[Any, str]]] = {}  # LOINC code -> [(observation, reference)]
    for position, entry in enumerate(bundle.entry or []):
        resource = entry.resource
        if resource is None:
            continue
        rtype = resource.get_resource_type()
        ref = entry.fullUrl or (f"{rtype}/{resource.id}" if resource.id else f"entry {position}")
        if rtype == "Patient" and patient is None:
            patient, patient_ref = resource, ref
        elif rtype == "Observation":
            if resource.status in ("entered-in-error", "cancelled"):
                continue
            for coding in (resource.code.coding or []) if resource.code else []:
                if (coding.system or LOINC_SYSTEM) == LOINC_SYSTEM and coding.code in codes:
                    if _observation_value(resource) is not None:
                        found.setdefault(coding.code, []).append((resource, ref))
                    break
    basis: list[str] = []
    notes: list[str] = []
    for code, candidates in found.items():
        column = codes[code]
        obs, ref = candidates[0]
        if len(candidates) > 1:
            obs, ref = _latest(code, column, candidates)
            others = ", ".join(r for _, r in candidates if r != ref)
            notes.append(
                f"LOINC {code} ({column}): {len(candidates)} Observations; used {ref}, the latest by effective "
                f"time; ignored {others}"
            )
        record[column] = _value_in_model_unit(obs, ref, code, column, units.get(column))
        basis.append(ref)
    if patient is not None:
        if mapping.get("gender_column") and patient.gender:
            values = mapping.get("gender_values") or {}
            record[mapping["gender_column"]] = values.get(patient.gender, patient.gender)
        if mapping.get("age_column") and patient.birthDate:
            birth = (
                patient.birthDate if isinstance(patient.birthDate, date) else date.fromisoformat(str(patient.birthDate))
            )
            record[mapping["age_column"]] = _age(birth, datetime.now(UTC).date())
    needed = [c["name"] for c in input_schema]
    missing = [c for c in needed if c not in record]
    if missing:
        by_column = {col: code for code, col in codes.items()}
        named = []
        for col in missing:
            if col in by_column:
                named.append(f"LOINC {by_column[col]} ({col})")
            elif col == mapping.get("gender_column"):
                named.append(f"Patient.gender ({col})")
            elif col == mapping.get("age_column"):
                named.append(f"Patient.birthDate ({col})")
            else:
                named.append(f"{col} (no LOINC code mapped)")
        raise MedAIError(f"the Bundle lacks observations the model needs: {', '.join(named)}")
    return record, patient_ref, basis, notes


def _latest(code: str, column: str, candidates: list[tuple[Any, str]]) -> tuple[Any, str]:
    timed = [(_effective_time(obs), obs, ref) for obs, ref in candidates]
    untimed = [ref for when, _, ref in timed if when is None]
    if untimed:
        raise MedAIError(
            f"the Bundle holds {len(candidates)} Observations for LOINC {code} ({column}) and {untimed[0]} has no "
            "effective time, so the latest cannot be told; send one Observation per code or give each an "
            "effectiveDateTime"
        )
    timed.sort(key=lambda item: item[0])
    if timed[-1][0] == timed[-2][0]:
        raise MedAIError(
            f"the Bundle holds {len(candidates)} Observations for LOINC {code} ({column}) and {timed[-2][2]} and "
            f"{timed[-1][2]} share the latest effective time; send one Observation per code"
        )
    return timed[-1][1], timed[-1][2]


def _value_in_model_unit(obs, ref: str, code: str, column: str, model_unit: str | None) -> Any:
    value = _observation_value(obs)
    what = f"Observation {ref} (LOINC {code}, column {column!r})"
    unit = _quantity_unit(obs)
    if obs.valueQuantity is None or obs.valueQuantity.value is None:
        return value  # a coded or text value: no unit
    if model_unit is None:
        if unit is not None and unit.strip() not in ("1", ""):
            raise MedAIError(
                f"{what}: has unit {unit[:64]!r} but the model's LOINC mapping declares no unit for column "
                f"{column!r}, so the value cannot be interpreted; an administrator sets 'units' in the mapping"
            )
        return value
    if unit is None:
        raise MedAIError(f"{what}: the quantity has no unit; expected one convertible to {model_unit!r}")
    return convert_quantity(value, unit, model_unit, what)


def risk_assessment(
    model: str,
    version: int,
    probability: float,
    label: str,
    positive_label: str,
    threshold: float,
    patient_ref: str | None,
    basis: list[str],
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """A FHIR R4 RiskAssessment (validated by fhir.resources) as JSON."""
    from fhir.resources.R4B.riskassessment import RiskAssessment

    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "occurrenceDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": {"text": f"MedAI model {model} version {version}"},
        "prediction": [
            {
                "outcome": {"text": positive_label},
                "probabilityDecimal": round(float(probability), 6),
                "qualitativeRisk": {"text": "high" if label == positive_label else "low"},
                "rationale": f"probability {probability:.3f}; decision threshold {threshold:.3f}",
            }
        ],
        "subject": {"reference": patient_ref or "Patient/unknown"},
    }
    if basis:
        resource["basis"] = [{"reference": ref} for ref in basis]
    if notes:
        resource["note"] = [{"text": text} for text in notes]
    return RiskAssessment.model_validate(resource).model_dump(mode="json", exclude_none=True)

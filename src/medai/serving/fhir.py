"""FHIR R4 in and out (fhir.resources R4B models, wire-compatible with R4 for these resources): a
Bundle (Patient + Observations) becomes one model input record, and a prediction becomes a ``RiskAssessment``.

Observations map to model columns by LOINC code through a per-model mapping kept in the database
(table ``model_loinc_maps``; set by an admin through ``PUT /v1/admin/models/{name}/loinc-mapping``).
The Patient's ``gender`` and ``birthDate`` can map to a sex column and an age column (years).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, String, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, session_factory
from medai.errors import MedAIError

LOINC_SYSTEM = "http://loinc.org"


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
    """A mapping may only name columns the model takes."""
    columns = {c["name"] for c in input_schema}
    targets = dict(mapping.get("mapping") or {})
    for key in ("gender_column", "age_column"):
        if mapping.get(key):
            targets[f"Patient.{key}"] = mapping[key]
    unknown = sorted({col for col in targets.values() if col not in columns})
    if unknown:
        raise MedAIError(f"LOINC mapping names column(s) the model does not take: {unknown}")


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


def bundle_to_record(bundle, mapping: dict[str, Any], input_schema: list[dict[str, Any]]):
    """(record, patient reference, observation references). Missing observations -> MedAIError naming
    the LOINC codes and the columns they feed."""
    codes = dict(mapping.get("mapping") or {})
    record: dict[str, Any] = {}
    patient_ref: str | None = None
    basis: list[str] = []
    patient = None
    for entry in bundle.entry or []:
        resource = entry.resource
        if resource is None:
            continue
        rtype = resource.get_resource_type()
        ref = entry.fullUrl or (f"{rtype}/{resource.id}" if resource.id else None)
        if rtype == "Patient" and patient is None:
            patient, patient_ref = resource, ref
        elif rtype == "Observation":
            if resource.status in ("entered-in-error", "cancelled"):
                continue
            for coding in (resource.code.coding or []) if resource.code else []:
                if (coding.system or LOINC_SYSTEM) == LOINC_SYSTEM and coding.code in codes:
                    value = _observation_value(resource)
                    if value is not None:
                        record[codes[coding.code]] = value
                        if ref:
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
    return record, patient_ref, basis


def risk_assessment(
    model: str,
    version: int,
    probability: float,
    label: str,
    positive_label: str,
    threshold: float,
    patient_ref: str | None,
    basis: list[str],
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
    return RiskAssessment.model_validate(resource).model_dump(mode="json", exclude_none=True)

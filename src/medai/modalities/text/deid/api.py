"""De-identifying texts, tables and DICOM files: what ``medai deid`` and ``POST /v1/deid`` call."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from medai import config
from medai.errors import MedAIError
from medai.modalities.text.deid.detect import Detector
from medai.modalities.text.deid.transform import Surrogates, transform, zip3


def installation_secret() -> bytes:
    """The installation's de-identification secret (``MEDAI_HOME/deid.key``, the one the service keys DICOM UIDs
    with), made once, readable by the owner only."""
    return config.secret_file("deid.key")


def deidentify_texts(texts: list[str], method: str = "tag", patients: list[str] | None = None,
                     detector: Detector | None = None, secret: bytes | None = None,
                     dayfirst: bool = False) -> list[tuple[str, list[dict]]]:
    """Each text de-identified, with its report (spans found: type and offsets, never the text replaced)."""
    detector = detector or Detector()
    patients = patients or [f"document-{i}" for i in range(len(texts))]
    surrogates = Surrogates(secret or installation_secret(), dayfirst=dayfirst) if method == "surrogate" else None
    found = detector.analyze(texts)
    return [transform(text, spans, method, str(patient), surrogates)
            for text, spans, patient in zip(texts, found, patients, strict=True)]


# -- tables ---------------------------------------------------------------------------------------------------

def deidentify_table(frame: pd.DataFrame, *, text_columns=(), date_columns=(), age_columns=(), zip_columns=(),
                     id_columns=(), drop_columns=(), patient_column: str | None = None, method: str = "surrogate",
                     detector: Detector | None = None, secret: bytes | None = None,
                     dayfirst: bool = False) -> tuple[pd.DataFrame, dict]:
    """Named columns transformed: free text through the detector, dates shifted per patient (intervals kept),
    ages over 89 grouped as "90+", ZIP codes by the ZIP-3 rule, identifiers replaced by keyed pseudonyms,
    dropped columns removed. Returns the table and a report of what changed per column."""
    named = {"text": text_columns, "date": date_columns, "age": age_columns, "zip": zip_columns, "id": id_columns,
             "drop": drop_columns}
    for role, columns in named.items():
        for column in columns:
            if column not in frame.columns:
                raise MedAIError(f"--{role}-columns: column {column!r} is not in the table; columns are "
                                 f"{list(frame.columns)}")
    if patient_column and patient_column not in frame.columns:
        raise MedAIError(f"--patient-column {patient_column!r} is not in the table")
    if not any(named.values()):
        raise MedAIError("name the columns to de-identify (--text-columns, --date-columns, --age-columns, "
                         "--zip-columns, --id-columns, --drop-columns)")
    secret = secret or installation_secret()
    surrogates = Surrogates(secret, dayfirst=dayfirst)
    out = frame.copy()
    patients = (frame[patient_column].astype(str).tolist() if patient_column
                else [f"row-{i}" for i in range(len(frame))])
    report: dict[str, dict] = {}
    for column in date_columns:
        values, changed = [], 0
        for value, patient in zip(frame[column], patients, strict=True):
            if pd.isna(value):
                values.append(value)
                continue
            new = surrogates.replace("DATE_TIME", str(value), patient)
            values.append(new)
            changed += new != str(value)
        out[column] = values
        report[column] = {"role": "date", "changed": changed}
    for column in age_columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        out[column] = [v if pd.isna(n) or n <= 89 else "90+" for v, n in zip(frame[column], numbers, strict=True)]
        report[column] = {"role": "age", "changed": int((numbers > 89).sum())}
    for column in zip_columns:
        out[column] = [v if pd.isna(v) else zip3(str(v)) for v in frame[column]]
        report[column] = {"role": "zip", "changed": int(frame[column].notna().sum())}
    for column in id_columns:
        out[column] = [v if pd.isna(v) else "ID-" + surrogates._digest("id", column, str(v)).hex()[:12]
                       for v in frame[column]]
        report[column] = {"role": "id", "changed": int(frame[column].notna().sum())}
    for column in text_columns:
        present = frame[column].notna()
        texts = frame.loc[present, column].astype(str).tolist()
        results = deidentify_texts(texts, method, [p for p, keep in zip(patients, present, strict=True) if keep],
                                   detector, secret, dayfirst)
        out.loc[present, column] = [r[0] for r in results]
        report[column] = {"role": "text", "spans": sum(len(r[1]) for r in results)}
    out = out.drop(columns=list(drop_columns))
    for column in drop_columns:
        report[column] = {"role": "drop"}
    return out, report


# -- DICOM ----------------------------------------------------------------------------------------------------

BURNED_IN_MODALITIES = {"US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC", "ECG"}


def burned_in_risk(ds) -> list[str]:
    """Reasons to suspect text burned into the pixels (no OCR): the BurnedInAnnotation flag, modalities and image
    types that usually carry it (ultrasound, secondary captures, screenshots), known vendor patterns."""
    reasons = []
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        reasons.append("BurnedInAnnotation is YES")
    modality = str(ds.get("Modality", "")).upper()
    if modality in BURNED_IN_MODALITIES:
        reasons.append(f"modality {modality} often carries burned-in text")
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "SECONDARY" in image_type or "SCREEN SAVE" in " ".join(image_type):
        reasons.append(f"image type {'/'.join(image_type)} (a secondary capture)")
    description = " ".join(str(ds.get(k, "")) for k in ("SeriesDescription", "ConversionType", "DerivationDescription"))
    if re.search(r"(?i)screen|capture|report|dose\s*(report|info)|scanned", description):
        reasons.append("the description names a screen capture, report or dose sheet")
    return reasons


def deidentify_dicom_file(source: Path, destination: Path, secret: bytes, refuse_burned_in: bool = False) -> dict:
    import pydicom

    from medai.fsutil import atomic_write_bytes
    from medai.privacy.dicom_deid import deidentify_with_report

    try:
        ds = pydicom.dcmread(str(source))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise MedAIError(f"{source} is not a readable DICOM file ({type(exc).__name__})") from None
    reasons = burned_in_risk(ds)
    if reasons and refuse_burned_in:
        raise MedAIError(f"{source}: refused, pixel data may hold burned-in text ({'; '.join(reasons)})")
    out, report = deidentify_with_report(ds, secret)
    import io

    buffer = io.BytesIO()
    out.save_as(buffer)
    atomic_write_bytes(destination, buffer.getvalue())
    from dataclasses import asdict

    summary = {k: v for k, v in asdict(report).items() if k not in ("source", "destination")}
    return {"input": str(source), "output": str(destination), "burned_in_risk": reasons, **summary}

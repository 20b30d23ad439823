"""Results as DICOM objects in the source study: a TID 1500 Measurement Report (Comprehensive 3D SR, via
highdicom) and Grad-CAM Secondary Captures, each in a new series; and, when configured, FHIR R4
DiagnosticReport + RiskAssessment for the EHR.

Result UIDs are derived from the batch (:func:`result_uid`): the same batch always gives the same SOP Instance
UIDs, so re-sending after a crash replaces nothing and duplicates nothing. Patient and study attributes are copied
from the source instances only: a result carries no identifying data its source did not.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from medai.privacy.dicom_deid import hash_uid

SCHEME = "99MEDAI"  # a private coding scheme (PS3.16: designators starting "99")
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 990, 991
_UID_SECRET = b"medai-gateway-result-uids-v1"
MANUFACTURER = "MedAI"


def result_uid(batch_id: str, what: str) -> str:
    return hash_uid(f"{batch_id}/{what}", _UID_SECRET)


@dataclass
class Finding:
    """One inference: the road's prediction item for one image (2D) or one volume (3D) and its sources."""

    sources: list  # the original pydicom datasets it was made from
    item: dict[str, Any]
    cam_png: bytes | None = None


def _code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value[:16], scheme_designator=SCHEME, meaning=meaning[:64])


def class_codes(classes: list[str]) -> dict[str, Any]:
    codes, used = {}, set()
    for i, name in enumerate(classes):
        value = re.sub(r"[^A-Za-z0-9_.-]", "", str(name)).upper()[:16] or f"CLASS{i}"
        if value in used:
            value = f"CLASS{i}"
        used.add(value)
        codes[name] = _code(value, str(name))
    return codes


def build_sr(batch_id: str, model_name: str, model_version: str, classes: list[str], findings: list[Finding]):
    """The Measurement Report: one measurement group per finding (finding, probabilities, uncertainty)."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes
    from pydicom.uid import ExplicitVRLittleEndian

    names = class_codes(classes)
    algorithm = hd.sr.AlgorithmIdentification(name=model_name[:64], version=str(model_version)[:64])
    unit = hd.sr.CodedConcept("1", "UCUM", "no units")
    groups = []
    for k, finding in enumerate(findings):
        item = finding.item
        label = str(item["label"])
        probabilities = {str(c): float(p) for c, p in (item.get("probabilities") or {}).items()}
        measurements = []
        if label in probabilities:
            measurements.append(hd.sr.Measurement(name=codes.DCM.Probability, value=probabilities[label], unit=unit,
                                                  algorithm_id=algorithm))
        for name, p in probabilities.items():
            measurements.append(hd.sr.Measurement(name=_code(f"P-{names[name].value}"[:16], f"Probability of {name}"),
                                                  value=p, unit=unit, algorithm_id=algorithm))
        if item.get("coverage") is not None:
            measurements.append(hd.sr.Measurement(name=_code("COVERAGE", "Conformal coverage"),
                                                  value=float(item["coverage"]), unit=unit))
        evaluations = []  # the finding itself is the group's Finding (121071, TID 1501 row 3)
        if "uncertain" in item:
            uncertain = bool(item["uncertain"])
            evaluations.append(hd.sr.QualitativeEvaluation(
                codes.DCM.CertaintyOfFinding,
                codes.SCT.Uncertain if uncertain else _code("CONFIDENT", "Single-class conformal prediction set")))
            evaluations.append(hd.sr.QualitativeEvaluation(_code("REFER", "Uncertain - refer to a clinician"),
                                                           codes.SCT.Yes if uncertain else codes.SCT.No))
            for member in item.get("prediction_set") or []:
                evaluations.append(hd.sr.QualitativeEvaluation(_code("SETMEMBER", "Conformal prediction set member"),
                                                               names[str(member)]))
        first = finding.sources[0]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=result_uid(batch_id, f"track/{first.SOPInstanceUID}"),
                                                         identifier=f"{model_name} finding {k + 1}"[:64]),
            algorithm_id=algorithm, finding_type=names[label], measurements=measurements,
            qualitative_evaluations=evaluations,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in finding.sources]))
    observer = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=result_uid(batch_id, "device"), name="MedAI", manufacturer_name=MANUFACTURER,
            model_name=f"{model_name} v{model_version}"[:64])))
    report = hd.sr.MeasurementReport(observation_context=observer,
                                     procedure_reported=hd.sr.CodedConcept("363679005", "SCT", "Imaging"),
                                     imaging_measurements=groups, title=codes.DCM.ImagingMeasurementReport)
    evidence = [ds for finding in findings for ds in finding.sources]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=result_uid(batch_id, "sr-series"),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=result_uid(batch_id, "sr"), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=f"MedAI {model_name} v{model_version} AI result"[:64])
    scheme = Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = SCHEME, "MedAI model outputs"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _orientation(ds) -> tuple[str, str] | None:
    value = ds.get("PatientOrientation")
    if value is not None and len(value) == 2 and all(str(v) for v in value):
        return str(value[0]), str(value[1])
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    letters = (("L", "R"), ("P", "A"), ("H", "F"))

    def letter(vector) -> str:
        axis = int(np.argmax(np.abs(vector)))
        return letters[axis][0] if vector[axis] > 0 else letters[axis][1]

    return letter([float(v) for v in iop[:3]]), letter([float(v) for v in iop[3:]])


def build_sc(batch_id: str, model_name: str, model_version: str, finding: Finding, number: int):
    """A Secondary Capture of the Grad-CAM overlay at the source's size (long side at most 1024 px)."""
    import highdicom as hd
    from PIL import Image
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian

    source = finding.sources[len(finding.sources) // 2]
    rows, columns = int(source.get("Rows", 0) or 256), int(source.get("Columns", 0) or 256)
    scale = min(1.0, 1024 / max(rows, columns))
    picture = Image.open(io.BytesIO(finding.cam_png)).convert("RGB")
    picture = picture.resize((max(1, round(columns * scale)), max(1, round(rows * scale))), Image.BILINEAR)
    orientation = _orientation(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        source, np.asarray(picture, dtype=np.uint8), "RGB", 8, "PATIENT",
        result_uid(batch_id, "sc-series"), SC_SERIES_NUMBER, result_uid(batch_id, f"sc/{source.SOPInstanceUID}"),
        number, MANUFACTURER, patient_orientation=orientation or ("L", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian, series_description=f"MedAI {model_name} Grad-CAM"[:64])
    if orientation is None:
        sc.PatientOrientation = ""  # unknown in the source: left empty rather than invented
    sc.Laterality = source.get("Laterality", "") or ""
    sc.BurnedInAnnotation = "NO"
    label, uncertain = finding.item.get("label"), finding.item.get("uncertain")
    sc.ImageComments = (f"Grad-CAM of '{label}' by {model_name} v{model_version}"
                        + ("; uncertain - refer" if uncertain else ""))[:10240]
    sc.DerivationDescription = "Grad-CAM heatmap over the image, made by MedAI; not for primary diagnosis"
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = source.SOPClassUID, source.SOPInstanceUID
    sc.SourceImageSequence = [reference]
    return sc


def fhir_bundle(batch_id: str, model_name: str, model_version: str, findings: list[Finding]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle: one DiagnosticReport for the series and one RiskAssessment per finding,
    identified by the study's UID (validated by fhir.resources)."""
    from fhir.resources.R4B.bundle import Bundle

    first = findings[0].sources[0]
    study = {"system": "urn:dicom:uid", "value": f"urn:oid:{first.StudyInstanceUID}"}
    subject = {"identifier": {"value": str(first.get("PatientID", "") or "unknown")}}
    entries, lines = [], []
    for k, finding in enumerate(findings):
        item = finding.item
        probability = (item.get("probabilities") or {}).get(str(item["label"]))
        lines.append(f"{item['label']}" + (f" (p={probability:.3f})" if probability is not None else "")
                     + ("; uncertain - refer" if item.get("uncertain") else ""))
        risk = {"resourceType": "RiskAssessment", "id": f"{batch_id[:24]}-r{k + 1}", "status": "preliminary",
                "subject": subject, "identifier": [study],
                "method": {"text": f"{model_name} v{model_version}"},
                "prediction": [{"outcome": {"text": str(item["label"])}}
                               | ({"probabilityDecimal": round(float(probability), 6)} if probability is not None
                                  else {})],
                "note": [{"text": "uncertain - refer to a clinician" if item.get("uncertain")
                          else "single-class conformal prediction set"}]}
        entries.append({"resource": risk})
    report = {"resourceType": "DiagnosticReport", "id": f"{batch_id[:24]}-dr", "status": "preliminary",
              "identifier": [study], "subject": subject,
              "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                                   "display": "Diagnostic imaging study"}]},
              "conclusion": f"MedAI {model_name} v{model_version}: " + "; ".join(lines)[:4000]}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": report}, *entries]}
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)


def encode(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

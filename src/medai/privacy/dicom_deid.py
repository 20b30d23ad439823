"""DICOM de-identification: PS3.15 Annex E, Basic Application Level Confidentiality Profile.

:func:`deidentify` returns a **new** dataset (the input is never modified) in which

* every attribute of Table E.1-1 present in the dataset — at any depth, inside sequences too — gets
  the Basic Profile action: ``X`` remove, ``Z`` empty value, ``D`` dummy value, ``U`` new UID;
  compound actions are resolved as ``X/Z``, ``Z/D``, ``X/Z/D`` → ``Z`` (the attribute stays, empty, so
  Type 2 attributes keep the IOD valid), ``X/D`` → ``X``, ``X/Z/U*`` → keep the sequence and replace
  the UIDs inside it;
* UIDs are replaced **consistently**: ``2.25.<int>`` where the integer is the first 128 bits of
  HMAC-SHA256(secret, original UID). The same UID and secret always give the same new UID, so the
  slices of a series stay one series and references between objects still resolve; a different
  secret gives unrelated UIDs. The File Meta *Media Storage SOP Instance UID* is mapped the same way.
  Well-known DICOM UIDs (SOP classes, transfer syntaxes, ``1.2.840.10008.*``) are never changed;
* all private attributes are removed, as are curve data (groups 50xx) and overlay data/comments (60xx);
* any person-name (PN) attribute not in the table is emptied as a safety net;
* *Patient Identity Removed* = ``YES``, *De-identification Method* names the profile,
  *De-identification Method Code Sequence* holds (113100, DCM, "Basic Application Confidentiality
  Profile"), and *Longitudinal Temporal Information Modified* = ``REMOVED`` (dates are not retained).

Pixel data is kept unless ``keep_pixel_data=False``. The profile does not clean pixels: when
*Burned In Annotation* is ``YES`` the caller is told (:class:`BurnedInAnnotationWarning`,
:attr:`DeidReport.burned_in_annotation`) — such images can show a name or date inside the picture.

:data:`PHI_TAGS` lists the keywords treated as identifying; :func:`find_phi` lists those still holding a
value (plus any private attribute), so callers and tests can prove nothing identifying is stored.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai.errors import MedAIError, NotFoundError

__all__ = [
    "BASIC_PROFILE_ACTIONS",
    "BurnedInAnnotationWarning",
    "DEID_METHOD",
    "DeidReport",
    "PHI_TAGS",
    "deidentify",
    "deidentify_file",
    "deidentify_with_report",
    "find_phi",
    "has_burned_in_annotation",
    "hash_uid",
]

DEID_METHOD = "PS3.15 Annex E Basic Application Confidentiality Profile"  # LO: <= 64 chars
DEID_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DUMMY_PN = "ANONYMIZED"
MIN_SECRET_BYTES = 16

# Table E.1-1, "Basic Prof." column (attributes relevant to images, reports and RT objects).
BASIC_PROFILE_ACTIONS: dict[str, str] = {
    # --- patient
    "PatientName": "Z",
    "PatientID": "Z",
    "IssuerOfPatientID": "X",
    "PatientBirthDate": "Z",
    "PatientBirthTime": "X",
    "PatientSex": "Z",
    "PatientAge": "X",
    "PatientSize": "X",
    "PatientWeight": "X",
    "PatientAddress": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTelecomInformation": "X",
    "PatientMotherBirthName": "X",
    "PatientBirthName": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientPrimaryLanguageModifierCodeSequence": "X",
    "PatientReligiousPreference": "X",
    "PatientSexNeutered": "X/Z",
    "PatientState": "X",
    "PatientTransportArrangements": "X",
    "PatientComments": "X",
    "PatientInstitutionResidence": "X",
    "EthnicGroup": "X",
    "Occupation": "X",
    "MilitaryRank": "X",
    "BranchOfService": "X",
    "CountryOfResidence": "X",
    "RegionOfResidence": "X",
    "MedicalRecordLocator": "X",
    "MedicalAlerts": "X",
    "Allergies": "X",
    "SmokingStatus": "X",
    "PregnancyStatus": "X",
    "AdditionalPatientHistory": "X",
    "InsurancePlanIdentification": "X",
    "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPatientAliasSequence": "X",
    "ConfidentialityConstraintOnPatientDataDescription": "X",
    "SpecialNeeds": "X",
    "PreMedication": "X",
    # --- visit / admission
    "AdmissionID": "X",
    "IssuerOfAdmissionID": "X",
    "AdmittingDate": "X",
    "AdmittingTime": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "DischargeDiagnosisDescription": "X",
    "CurrentPatientLocation": "X",
    "ScheduledPatientInstitutionResidence": "X",
    "ServiceEpisodeID": "X",
    "ServiceEpisodeDescription": "X",
    "IssuerOfServiceEpisodeID": "X",
    "VisitComments": "X",
    # --- study / series / dates
    "StudyDate": "Z",
    "StudyTime": "Z",
    "SeriesDate": "X/D",
    "SeriesTime": "X/D",
    "AcquisitionDate": "X/Z",
    "AcquisitionTime": "X/Z",
    "AcquisitionDateTime": "X/Z/D",
    "ContentDate": "Z/D",
    "ContentTime": "Z/D",
    "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "DateOfLastCalibration": "X",
    "TimeOfLastCalibration": "X",
    "DateOfSecondaryCapture": "X",
    "TimeOfSecondaryCapture": "X",
    "TimezoneOffsetFromUTC": "X",
    "AccessionNumber": "Z",
    "StudyID": "Z",
    "StudyIDIssuer": "X",
    "StudyDescription": "X",
    "SeriesDescription": "X",
    "StudyComments": "X",
    "ReasonForStudy": "X",
    "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureID": "X",
    "RequestedProcedureLocation": "X",
    "RequestedProcedureComments": "X",
    "RequestedContrastAgent": "X",
    "RequestAttributesSequence": "X",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "ReasonForTheImagingServiceRequest": "X",
    "ImagingServiceRequestComments": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X",
    "ReferencedStudySequence": "X/Z",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "ReferencedImageSequence": "X/Z/U*",
    "SourceImageSequence": "X/Z/U*",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "PerformedLocation": "X",
    "PerformedStationAETitle": "X",
    "PerformedStationName": "X",
    "PerformedStationNameCodeSequence": "X",
    "PerformedStationGeographicLocationCodeSequence": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepLocation": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStationName": "X",
    "ScheduledStationNameCodeSequence": "X",
    "ScheduledStationGeographicLocationCodeSequence": "X",
    "ScheduledStudyLocation": "X",
    "ScheduledStudyLocationAETitle": "X",
    "ScheduledHumanPerformersSequence": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "AcquisitionContextSequence": "X",
    "AcquisitionComments": "X",
    "AcquisitionDeviceProcessingDescription": "X/D",
    "ProtocolName": "X/D",
    "ContrastBolusAgent": "Z/D",
    "DerivationDescription": "X",
    "ContributionDescription": "X",
    # --- people
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "OperatorsName": "X/Z/D",
    "OperatorsIdentificationSequence": "X/D",
    "NamesOfIntendedRecipientsOfResults": "X",
    "IntendedRecipientsOfResultsIdentificationSequence": "X",
    "HumanPerformerName": "X",
    "HumanPerformerOrganization": "X",
    "ActualHumanPerformersSequence": "X",
    "PersonName": "D",
    "PersonAddress": "X",
    "PersonTelephoneNumbers": "X",
    "PersonIdentificationCodeSequence": "D",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingOrganization": "X",
    "AuthorObserverSequence": "X",
    "ParticipantSequence": "X",
    "CustodialOrganizationSequence": "X",
    "ContentCreatorName": "Z",
    "ContentCreatorIdentificationCodeSequence": "X",
    "ReviewerName": "X/Z",
    # --- institution / equipment
    "InstitutionName": "X/Z/D",
    "InstitutionAddress": "X",
    "InstitutionCodeSequence": "X/Z/D",
    "InstitutionalDepartmentName": "X",
    "StationName": "X/Z/D",
    "DeviceSerialNumber": "X/Z/D",
    "DetectorID": "X/D",
    "GantryID": "X",
    "GeneratorID": "X",
    "CassetteID": "X",
    "PlateID": "X",
    "ModifyingDeviceID": "X",
    "ModifyingDeviceManufacturer": "X",
    # --- free text and other carriers
    "ImageComments": "X",
    "FrameComments": "X",
    "ImagePresentationComments": "X",
    "IdentifyingComments": "X",
    "ModifiedImageDescription": "X",
    "TextComments": "X",
    "TextString": "X",
    "Arbitrary": "X",
    "ContentSequence": "X",
    "GraphicAnnotationSequence": "D",
    "IconImageSequence": "X",
    "OriginalAttributesSequence": "X",
    "ModifiedAttributesSequence": "X",
    "DigitalSignaturesSequence": "X",
    "ReferencedDigitalSignatureSequence": "X",
    "ReferencedSOPInstanceMACSequence": "X",
    "MAC": "X",
    "DigitalSignatureUID": "X",
    "DataSetTrailingPadding": "X",
    "AffectedSOPInstanceUID": "X",
    "DistributionName": "X",
    "DistributionAddress": "X",
    "Impressions": "X",
    "InterpretationText": "X",
    "InterpretationAuthor": "X",
    "InterpretationRecorder": "X",
    "InterpretationTranscriber": "X",
    "InterpretationApproverSequence": "X",
    "InterpretationDiagnosisDescription": "X",
    "InterpretationIDIssuer": "X",
    "PhysicianApprovingInterpretation": "X",
    "ResultsComments": "X",
    "ResultsDistributionListSequence": "X",
    "ResultsIDIssuer": "X",
    "TopicTitle": "X",
    "TopicSubject": "X",
    "TopicAuthor": "X",
    "TopicKeywords": "X",
    # --- UIDs
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "MediaStorageSOPInstanceUID": "U",
    "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "RelatedFrameOfReferenceUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "RequestedSOPInstanceUID": "U",
    "InstanceCreatorUID": "U",
    "IrradiationEventUID": "U",
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "DoseReferenceUID": "U",
    "FiducialUID": "U",
    "DeviceUID": "U",
    "CreatorVersionUID": "U",
    "AcquisitionUID": "U",
    "TransactionUID": "U",
    "StorageMediaFileSetUID": "U",
    "LargePaletteColorLookupTableUID": "U",
    "FailedSOPInstanceUIDList": "U",
    "ContextGroupExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "TemplateExtensionCreatorUID": "U",
    "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID": "U",
    "UID": "U",
}

PHI_TAGS: frozenset[str] = frozenset(kw for kw, action in BASIC_PROFILE_ACTIONS.items() if "U" not in action)
"""Keywords treated as identifying (every Table E.1-1 attribute the profile does not map as a UID)."""

_UID_KEYWORDS = frozenset(kw for kw, action in BASIC_PROFILE_ACTIONS.items() if action == "U")
# Sequences whose items are cleaned recursively instead of removed (U*, and D on a sequence).
_RECURSE_ACTIONS = {"X/Z/U*", "D"}


class BurnedInAnnotationWarning(UserWarning):
    """The image declares burned-in annotation: text inside the pixels may identify the patient."""


@dataclass
class DeidReport:
    """What :func:`deidentify_with_report` did."""

    burned_in_annotation: bool = False
    removed: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    replaced_uids: int = 0
    private_tags_removed: int = 0
    pixel_data_kept: bool = True
    source: str | None = None
    destination: str | None = None


def hash_uid(uid: str, secret: bytes) -> str:
    """``2.25.<int>``: the first 128 bits of HMAC-SHA256(secret, uid) as a decimal integer."""
    digest = hmac.new(secret, str(uid).strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _is_well_known(uid: str) -> bool:
    return str(uid).startswith("1.2.840.10008.")


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, (bytes, bytearray)):
        raise MedAIError(f"secret must be bytes; got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise MedAIError(
            f"secret must be at least {MIN_SECRET_BYTES} bytes (got {len(secret)}); use os.urandom(32)"
        )
    return bytes(secret)


def has_burned_in_annotation(ds) -> bool:
    """Whether (0028,0301) Burned In Annotation is ``YES``."""
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


def _dummy_for(elem) -> Any:
    vr = elem.VR
    if vr == "PN":
        return DUMMY_PN
    if vr == "DA":
        return "19000101"
    if vr == "TM":
        return "000000"
    if vr == "DT":
        return "19000101000000"
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "IS", "DS"):
        return 0
    return "ANONYMIZED"


def _map_uid_value(value, secret: bytes, report: DeidReport):
    from pydicom.multival import MultiValue

    def one(u):
        if u in (None, "") or _is_well_known(u):
            return u
        report.replaced_uids += 1
        return hash_uid(u, secret)

    if isinstance(value, (list, MultiValue)):
        return [one(u) for u in value]
    return one(value)


def _clean(ds, secret: bytes, report: DeidReport, path: str = "") -> None:
    from pydicom.sequence import Sequence

    for elem in list(ds):
        tag = elem.tag
        if tag.is_private:
            del ds[tag]
            report.private_tags_removed += 1
            continue
        group = tag.group
        if 0x5000 <= group <= 0x50FF or (0x6000 <= group <= 0x60FF and tag.element in (0x3000, 0x4000)):
            del ds[tag]
            report.removed.append(f"{path}({group:04X},{tag.element:04X})")
            continue
        keyword = elem.keyword
        action = BASIC_PROFILE_ACTIONS.get(keyword)
        where = f"{path}{keyword}"
        if action is None:
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value or []):
                    _clean(item, secret, report, f"{where}[{i}].")
            elif elem.VR == "PN" and elem.value not in (None, ""):
                elem.value = ""  # safety net: a person name the table does not list
                report.emptied.append(where)
            continue
        if action == "U":
            if elem.value not in (None, ""):
                elem.value = _map_uid_value(elem.value, secret, report)
            continue
        if action in _RECURSE_ACTIONS and elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _clean(item, secret, report, f"{where}[{i}].")
            continue
        if action in ("X", "X/D"):
            del ds[tag]
            report.removed.append(where)
        elif action == "D":
            elem.value = _dummy_for(elem)
        else:  # Z, X/Z, Z/D, X/Z/D: keep the attribute with an empty value
            elem.value = Sequence() if elem.VR == "SQ" else ""
            report.emptied.append(where)


def _mark(ds) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEID_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = DEID_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def deidentify_with_report(ds, secret: bytes, *, keep_pixel_data: bool = True):
    """Like :func:`deidentify` but return ``(new_dataset, DeidReport)`` and emit no warning."""
    from pydicom.dataset import Dataset

    secret = _check_secret(secret)
    if not isinstance(ds, Dataset):
        raise MedAIError(f"expected a pydicom Dataset; got {type(ds).__name__}")
    report = DeidReport(burned_in_annotation=has_burned_in_annotation(ds), pixel_data_kept=keep_pixel_data)
    try:
        out = copy.deepcopy(ds)
    except Exception as exc:
        raise MedAIError(f"cannot copy the dataset for de-identification ({exc})") from exc
    try:
        _clean(out, secret, report)
        meta = getattr(out, "file_meta", None)
        if meta is not None:
            _clean(meta, secret, report, "file_meta.")
        if not keep_pixel_data:
            for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
                if kw in out:
                    del out[kw]
        _mark(out)
    except MedAIError:
        raise
    except Exception as exc:
        raise MedAIError(f"cannot de-identify the dataset: unreadable attribute ({exc})") from exc
    return out, report


def deidentify(ds, secret: bytes, *, keep_pixel_data: bool = True):
    """Return a de-identified copy of ``ds`` (Basic Application Level Confidentiality Profile).

    ``secret`` (bytes, >= 16) keys the HMAC that maps UIDs; keep it to map further files of the same
    studies consistently, and keep it secret — with it the mapping of a known UID can be checked.
    Warns :class:`BurnedInAnnotationWarning` when the image declares burned-in annotation.
    """
    out, report = deidentify_with_report(ds, secret, keep_pixel_data=keep_pixel_data)
    if report.burned_in_annotation:
        warnings.warn(
            "BurnedInAnnotation is YES: the pixels may show identifying text; the Basic Profile does "
            "not clean pixel data",
            BurnedInAnnotationWarning,
            stacklevel=2,
        )
    return out


def _ensure_file_meta(ds, src: Path) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit = getattr(ds, "original_encoding", (None, True))[0]
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    if ds.get("SOPClassUID"):
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if ds.get("SOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def deidentify_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    secret: bytes,
    *,
    keep_pixel_data: bool = True,
) -> DeidReport:
    """De-identify the DICOM file ``src`` and write the result to ``dst`` atomically.

    The file is written to a temporary file next to ``dst``, flushed and renamed over ``dst``, so a
    crash leaves either no ``dst`` or the complete new one. ``src`` is never modified (``dst`` may not
    be ``src``). Returns a :class:`DeidReport`; check ``burned_in_annotation``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medai.fsutil import atomic_write_bytes

    secret = _check_secret(secret)
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_file():
        raise NotFoundError(f"{src_p}: DICOM file not found")
    if dst_p.exists() and dst_p.resolve() == src_p.resolve():
        raise MedAIError(f"{dst_p}: destination is the source file; write the de-identified copy elsewhere")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(src_p)
            except InvalidDicomError:
                from medai.data.dicom import is_dicom

                if not is_dicom(src_p):
                    raise MedAIError(
                        f"{src_p}: not a DICOM file; expected a DICOM file to de-identify"
                    ) from None
                ds = pydicom.dcmread(src_p, force=True)
            for elem in ds.iterall():
                _ = elem.value
    except MedAIError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise MedAIError(f"{src_p}: corrupt or truncated DICOM file ({reason})") from exc
    out, report = deidentify_with_report(ds, secret, keep_pixel_data=keep_pixel_data)
    _ensure_file_meta(out, src_p)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's VR warnings about values kept from the source
            out.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise MedAIError(f"{src_p}: de-identified dataset could not be encoded ({exc})") from exc
    atomic_write_bytes(dst_p, buffer.getvalue())
    report.source, report.destination = str(src_p), str(dst_p)
    return report


def find_phi(ds) -> list[str]:
    """Keywords of :data:`PHI_TAGS` that still hold a value, anywhere in ``ds`` (sequences and file meta
    included), plus every private attribute as ``"private (gggg,eeee)"``. Empty after :func:`deidentify`.

    Values the profile itself writes (the ``D`` dummy values) do not count.
    """
    found: list[str] = []

    def visit(dataset, prefix: str) -> None:
        for elem in dataset:
            if elem.tag.is_private:
                found.append(f"{prefix}private ({elem.tag.group:04X},{elem.tag.element:04X})")
                continue
            kw = elem.keyword
            if elem.VR == "SQ":
                if kw in PHI_TAGS and BASIC_PROFILE_ACTIONS[kw] not in _RECURSE_ACTIONS and elem.value:
                    found.append(f"{prefix}{kw}")
                    continue
                for i, item in enumerate(elem.value or []):
                    visit(item, f"{prefix}{kw}[{i}].")
                continue
            if kw in PHI_TAGS and not _empty(elem.value):
                if BASIC_PROFILE_ACTIONS[kw] == "D" and elem.value == _dummy_for(elem):
                    continue
                found.append(f"{prefix}{kw}")

    visit(ds, "")
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        visit(meta, "file_meta.")
    return found


def _empty(value) -> bool:
    if value is None:
        return True
    from pydicom.valuerep import PersonName

    if isinstance(value, PersonName):
        return str(value).strip() == ""
    if isinstance(value, (str, bytes)):
        return value.strip() == "" if isinstance(value, str) else len(value) == 0
    try:
        return len(value) == 0  # MultiValue, PersonName, ...
    except TypeError:
        return False

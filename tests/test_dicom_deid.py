"""DICOM de-identification (PS3.15 Annex E Basic Profile) on every real sample file."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pydicom
import pytest
from conftest import require_data
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medai.errors import MedAIError, NotFoundError
from medai.privacy.dicom_deid import (
    PHI_TAGS,
    BurnedInAnnotationWarning,
    deidentify,
    deidentify_file,
    deidentify_with_report,
    find_phi,
    hash_uid,
)

SECRET = b"test-secret-0123456789abcdef"
OTHER = b"another-secret-0123456789abcdef"
SAMPLES = [
    "CT_small.dcm",
    "ExplVR_BigEnd.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
]
CT_SERIES = ["dicomdir/98892001/CT5N/2062", "dicomdir/98892001/CT5N/2392"]


def read(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(require_data(f"imaging/dicom/{name}"), force=True)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_is_clean_and_readable(name, tmp_path):
    ds = read(name)
    original = copy.deepcopy(ds)
    assert find_phi(ds), "the samples carry identifying attributes to remove"
    out = deidentify(ds, SECRET)
    assert find_phi(out) == []
    # the input is untouched
    assert ds == original
    assert ds.file_meta == original.file_meta if hasattr(ds, "file_meta") else True
    # profile markers
    assert out.PatientIdentityRemoved == "YES"
    assert "Basic Application Confidentiality Profile" in out.DeidentificationMethod
    code = out.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"
    # UIDs replaced by 2.25.<hmac>
    assert out.SOPInstanceUID == hash_uid(ds.SOPInstanceUID, SECRET)
    assert out.SOPInstanceUID.startswith("2.25.") and len(out.SOPInstanceUID) <= 64
    assert out.SOPClassUID == ds.SOPClassUID  # well-known UIDs stay
    if "StudyInstanceUID" in ds:
        assert out.StudyInstanceUID == hash_uid(ds.StudyInstanceUID, SECRET)
    # no private tags anywhere
    assert not any(elem.tag.is_private for elem in out.iterall())
    # pixels unchanged
    if "PixelData" in ds:
        np.testing.assert_array_equal(out.pixel_array, ds.pixel_array)
    # written atomically, reads back clean with the same pixels and UIDs
    dst = tmp_path / "out" / "deid.dcm"
    report = deidentify_file(require_data(f"imaging/dicom/{name}"), dst, SECRET)
    assert report.destination == str(dst) and not list(dst.parent.glob(".*tmp"))
    back = pydicom.dcmread(dst)
    assert find_phi(back) == []
    assert back.SOPInstanceUID == out.SOPInstanceUID
    assert back.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    if "PixelData" in ds:
        np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)


def test_basic_profile_actions_on_a_built_dataset():
    ds = read("CT_small.dcm")
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-123"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.OtherPatientIDs = "X-9"
    ds.PatientAddress = "1 Main St"
    ds.InstitutionName = "General Hospital"
    ds.ReferringPhysicianName = "Who^Dr"
    ds.PerformingPhysicianName = "Strange^Stephen"
    ds.OperatorsName = "Tech^Tom"
    ds.AccessionNumber = "ACC1"
    ds.ImageComments = "patient Jane Doe"
    ds.ContentSequence = Sequence()
    req = Dataset()
    req.RequestedProcedureID = "RP1"
    ds.RequestAttributesSequence = Sequence([req])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00091001, "LO", "private secret")  # private tag (CT_small has many more)
    out = deidentify(ds, SECRET)
    for kw in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDate",
        "StudyTime",
    ):
        assert kw in out and not str(out.data_element(kw).value), kw  # Z: present, empty
    for kw in (
        "PatientAge",
        "OtherPatientIDs",
        "PatientAddress",
        "PerformingPhysicianName",
        "ImageComments",
        "RequestAttributesSequence",
        "ContentSequence",
        "SeriesDate",
    ):
        assert kw not in out, kw  # X: removed
    assert not str(out.InstitutionName) and not str(out.OperatorsName)
    ref_out = out.ReferencedImageSequence[0]
    assert ref_out.ReferencedSOPInstanceUID == hash_uid("1.2.3.4.5.6", SECRET)
    assert ref_out.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert {"PatientName", "PatientID", "InstitutionName", "StudyDate", "AccessionNumber"} <= PHI_TAGS


def test_uids_consistent_within_a_series_and_secret_dependent():
    a, b = (pydicom.dcmread(require_data(f"imaging/dicom/{p}")) for p in CT_SERIES)
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    da, db = deidentify(a, SECRET), deidentify(b, SECRET)
    assert da.SeriesInstanceUID == db.SeriesInstanceUID != a.SeriesInstanceUID
    assert da.StudyInstanceUID == db.StudyInstanceUID
    assert da.FrameOfReferenceUID == db.FrameOfReferenceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID
    again = deidentify(a, SECRET)
    assert again.SOPInstanceUID == da.SOPInstanceUID  # deterministic
    other = deidentify(a, OTHER)
    assert other.SeriesInstanceUID != da.SeriesInstanceUID
    assert other.SOPInstanceUID != da.SOPInstanceUID


def test_private_tags_and_keep_pixel_data():
    ds = read("CT_small.dcm")
    assert any(e.tag.is_private for e in ds.iterall())
    out, report = deidentify_with_report(ds, SECRET, keep_pixel_data=False)
    assert report.private_tags_removed > 0 and "PixelData" not in out
    assert not any(e.tag.is_private for e in out.iterall())
    assert "PixelData" in ds


def test_burned_in_annotation_is_reported(tmp_path):
    ds = read("ExplVR_BigEnd.dcm")
    ds.BurnedInAnnotation = "YES"
    with pytest.warns(BurnedInAnnotationWarning):
        deidentify(ds, SECRET)
    _, report = deidentify_with_report(ds, SECRET)
    assert report.burned_in_annotation
    path = tmp_path / "us.dcm"
    ds.save_as(path)
    assert deidentify_file(path, tmp_path / "us_deid.dcm", SECRET).burned_in_annotation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deidentify(read("MR_small.dcm"), SECRET)  # no flag, no warning


def test_bad_input(tmp_path):
    with pytest.raises(MedAIError, match="at least 16 bytes"):
        deidentify(read("MR_small.dcm"), b"short")
    with pytest.raises(MedAIError, match="must be bytes"):
        deidentify(read("MR_small.dcm"), "a string secret of some length")
    with pytest.raises(NotFoundError):
        deidentify_file(tmp_path / "none.dcm", tmp_path / "o.dcm", SECRET)
    txt = tmp_path / "notes.dcm"
    txt.write_text("hello")
    with pytest.raises(MedAIError, match="notes.dcm: not a DICOM file"):
        deidentify_file(txt, tmp_path / "o.dcm", SECRET)
    raw = require_data("imaging/dicom/CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[:60])
    with pytest.raises(MedAIError, match="cut.dcm"):
        deidentify_file(cut, tmp_path / "o.dcm", SECRET)
    assert not (tmp_path / "o.dcm").exists()
    src = tmp_path / "src.dcm"
    src.write_bytes(raw)
    with pytest.raises(MedAIError, match="destination is the source"):
        deidentify_file(src, src, SECRET)
    assert src.read_bytes() == raw

"""Writes the hostile-input corpus: malformed CSV, JSON, images, DICOM, NIfTI, zips and FHIR bundles.

    python tests/corpus/make_corpus.py [OUT_DIR]   # writes the files (default tests/corpus/files/, not
                                                   # kept in git) and rewrites tests/corpus/index.json

Every input is generated here from code, so the corpus is reviewed and extended as code and the repository
carries no binary blobs (the files add up to ~13 MB; the test writes them to a temporary folder in ~4 s).
``index.json`` (kept in git, checked against this generator by the test) lists each file with

- ``route``: where the test sends it — ``predict-json`` (body of a tabular predict), ``predict-file`` (a
  multipart upload to an image model), ``job-csv`` / ``job-file`` (a batch job for the tabular / image
  model), ``fhir`` (a Bundle to ``RiskAssessment/$predict``);
- ``cli``: whether ``medai predict`` must refuse it too (exit code 2) — bombs that only the service must
  bound (a local user's own big image is fine to read at the command line) say false;
- ``what``: what is wrong with it.

The test (``tests/test_corpus.py``) expects a 4xx for each, the server still answering, and memory bounded.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"

# the WDBC model's first two columns, enough to make a CSV look right before it goes wrong
COLUMNS = ["mean radius", "mean texture", "mean perimeter", "mean area"]
CASES: list[dict] = []


OUT = FILES


def add(name: str, data: bytes, route: str, what: str, cli: bool = False) -> None:
    (OUT / name).write_bytes(data)
    CASES.append({"file": name, "route": route, "cli": cli, "what": what})


def wdbc_row() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    return {k: float(v) for k, v in frame.iloc[0].items()}


def csv_text(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


# ---------------------------------------------------------------------------------------------------- CSV


def csv_cases(row: dict[str, float]) -> None:
    good = csv_text([row, row])
    header, first = good.splitlines()[:2]
    add("empty.csv", b"", "job-csv", "an empty file", cli=True)
    add("header_only.csv", (header + "\n").encode(), "job-csv", "a header and no rows", cli=True)
    add("wrong_columns.csv", b"a,b,c\n1,2,3\n", "job-csv", "none of the model's columns", cli=True)
    bad = dict(row, **{"mean texture": "Jane Doe MRN 12345"})
    add("text_in_numeric.csv", csv_text([row, bad]).encode(), "job-csv", "a name in a numeric column", cli=True)
    add("binary_garbage.csv", bytes(range(256)) * 64, "job-csv", "binary data with a .csv name", cli=True)
    add("invalid_utf8.csv", (header + "\n").encode() + b"\xff\xfe\xfa" * 100 + b"\n", "job-csv",
        "bytes that are not UTF-8", cli=True)
    add("ragged.csv", (header + "\n" + first + ",1,2,3\n" + first + "\n").encode(), "job-csv",
        "a row with more fields than the header", cli=True)
    add("nul_bytes.csv", (header + "\n").encode() + first.encode().replace(b",", b"\x00,", 3) + b"\n", "job-csv",
        "NUL bytes inside numbers", cli=True)
    add("overflow_values.csv", (header + "\n" + ",".join(["1e400"] * len(row)) + "\n").encode(), "job-csv",
        "every value 1e400 (infinite as a double)", cli=True)
    add("only_separators.csv", b",,,,\n,,,,\n", "job-csv", "separators and nothing else", cli=True)
    add("unterminated_quote.csv", (header + '\n"' + first + "\n").encode(), "job-csv",
        "a quoted field that never ends", cli=True)
    add("huge_field.csv", (header + "\n" + "9" * 2_000_000 + first[1:] + "\n").encode(), "job-csv",
        "a 2,000,000-digit number in a cell", cli=True)
    add("duplicate_columns.csv", (b"mean radius,mean radius\n1,2\n"), "job-csv",
        "the same column twice and the others missing", cli=True)


# --------------------------------------------------------------------------------------------------- JSON


def json_cases(row: dict[str, float]) -> None:
    body = json.dumps({"records": [row]})
    add("malformed.json", body[:-7].encode(), "predict-json", "JSON cut off in the middle")
    add("deep_nesting.json", ('{"records": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(), "predict-json",
        "arrays nested 100,000 deep")
    add("huge_integer.json", body.replace(str(row["mean radius"]), "1" + "0" * 5000, 1).encode(), "predict-json",
        "a 5,001-digit integer")
    add("int_past_double.json", body.replace(str(row["mean radius"]), "1" + "0" * 400, 1).encode(), "predict-json",
        "an integer past the range of a double")
    add("nan_literal.json", body.replace(str(row["mean radius"]), "NaN", 1).encode(), "predict-json",
        "NaN, which is not JSON")
    add("text_in_numeric.json", json.dumps({"records": [dict(row, **{"mean area": "big"})]}).encode(),
        "predict-json", "text for a numeric column")
    add("nested_value.json", json.dumps({"records": [dict(row, **{"mean area": {"a": [1]}})]}).encode(),
        "predict-json", "an object for a numeric column")
    add("records_not_list.json", json.dumps({"records": row}).encode(), "predict-json", "records is an object")
    add("empty_records.json", b'{"records": []}', "predict-json", "no records")
    add("missing_column.json", json.dumps({"records": [{k: v for k, v in row.items() if k != "mean area"}]}).encode(),
        "predict-json", "a record without a column the model needs")
    add("extra_top_level.json", json.dumps({"records": [row], "debug": True}).encode(), "predict-json",
        "an unknown top-level field")
    add("lone_surrogate.json", body.replace('"mean radius"', '"mean \\ud800radius"', 1).encode(), "predict-json",
        "a lone UTF-16 surrogate in a key")
    add("not_utf8.json", b'{"records": [{"\xff\xfe": 1}]}', "predict-json", "bytes that are not UTF-8")
    add("top_level_array.json", json.dumps([row]).encode(), "predict-json", "an array instead of an object")
    extreme = {k: 1.79e308 * (-1) ** i for i, k in enumerate(row)}
    add("overflowing_record.json", json.dumps({"records": [extreme]}).encode(), "predict-json",
        "every column at +-1.79e308: the model's arithmetic overflows")
    add("too_many_records.json", json.dumps({"records": [row] * 10_001}).encode(), "predict-json",
        "10,001 records, one over the limit")


# ------------------------------------------------------------------------------------------------- images


def png(width: int, height: int, mode: str = "L") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_cases() -> None:
    from PIL import Image

    small = png(64, 64)
    add("truncated.png", small[: len(small) // 2], "predict-file", "a PNG cut in half", cli=True)
    jpeg = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(jpeg, format="JPEG")
    add("truncated.jpg", jpeg.getvalue()[:300], "predict-file", "a JPEG cut after its header", cli=True)
    add("bomb_9000px.png", png(9000, 9000), "predict-file",
        "78 KB that decode to 81 Mpx (under Pillow's own bomb limit)")
    add("bomb_30000px.png", png(30000, 30000), "predict-file", "900 Mpx: Pillow's decompression-bomb range")
    add("zero_bytes.png", b"", "predict-file", "an empty upload", cli=True)
    add("text_as.png", b"this is not an image\n" * 10, "predict-file", "text with a .png name", cli=True)
    gif = io.BytesIO()
    Image.new("L", (32, 32)).save(gif, format="GIF")
    add("image.gif", gif.getvalue(), "predict-file", "a GIF (not a supported format)", cli=True)
    add("vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9e9" height="9e9"/>', "predict-file",
        "an SVG claiming 9e9 px", cli=True)
    add("one_pixel.png", png(1, 1), "predict-file", "1 x 1 pixel, below the smallest side", cli=True)
    add("rgba.png", png(64, 64, "RGBA"), "predict-file", "four channels (alpha) for a grey model", cli=True)
    header = bytearray(png(64, 64))
    struct.pack_into(">II", header, 16, 60000, 60000)  # IHDR width/height, CRC now wrong
    add("lying_ihdr.png", bytes(header), "predict-file", "a PNG header claiming 60000 x 60000 px")
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    add("pickle.npy", buffer.getvalue(), "predict-file", "a .npy holding a pickle", cli=True)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (600, 600, 600)})
    add("lying_header.npy", buffer.getvalue() + b"\0" * 64, "predict-file",
        "a .npy header claiming 600^3 floats over 64 bytes", cli=True)
    add("nan_image.npy", _npy(np.full((32, 32), np.nan, dtype=np.float32)), "predict-file",
        "an image of NaN", cli=True)
    add("huge_volume.nii", _nifti_header((600, 600, 600)), "predict-file",
        "a NIfTI header claiming 600^3 voxels (864 MB) over 64 bytes")
    add("truncated.nii.gz", gzip.compress(_nifti_header((64, 64, 64)) + b"\0" * 1000)[:400], "predict-file",
        "a gzipped NIfTI cut short", cli=True)
    add("timeseries.nii", _nifti_header((16, 16, 16, 5)) + b"\0" * (16**3 * 5 * 4), "predict-file",
        "a 4D NIfTI time series", cli=True)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _nifti_header(shape) -> bytes:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    return header.binaryblock + b"\0" * 4


# -------------------------------------------------------------------------------------------------- DICOM


def dicom(rows=16, columns=16, pixels=True, sop="1.2.840.10008.5.1.4.1.1.2", frames=None, syntax=None,
          pixel_bytes=None) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["corpus", str(rows), str(columns), sop])
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Corpus^Patient"
    ds.PatientID = "CORPUS-0001"
    ds.Modality = "CT"
    if pixels:
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if frames:
            ds.NumberOfFrames = frames
        ds.PixelData = pixel_bytes if pixel_bytes is not None else b"\0\1" * (16 * 16)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_cases() -> None:
    from pydicom.uid import JPEGLSLossless

    add("no_pixels.dcm", dicom(pixels=False), "predict-file", "a CT object without pixel data", cli=True)
    add("rt_plan.dcm", dicom(pixels=False, sop="1.2.840.10008.5.1.4.1.1.481.5"), "predict-file",
        "an RT Plan (never has pixels)", cli=True)
    add("lying_rows.dcm", dicom(rows=4096, columns=4096), "predict-file",
        "Rows/Columns 4096 over 512 bytes of pixel data", cli=True)
    add("lying_frames.dcm", dicom(frames=100_000), "predict-file",
        "NumberOfFrames 100,000 over one frame of pixel data", cli=True)
    add("huge_dims.dcm", dicom(rows=65535, columns=65535), "predict-file",
        "65535 x 65535 px claimed (4.3 Gpx) over 512 bytes")
    full = dicom()
    add("truncated.dcm", full[: len(full) - 300], "predict-file", "a DICOM file cut inside its pixel data",
        cli=True)
    add("garbage_after_preamble.dcm", b"\0" * 128 + b"DICM" + bytes(range(256)) * 8, "predict-file",
        "the DICM marker followed by garbage", cli=True)
    from pydicom.encaps import encapsulate

    garbage = encapsulate([b"\xff\xd8" + b"\x00" * 510])
    add("jpegls_garbage.dcm", dicom(syntax=JPEGLSLossless, pixel_bytes=garbage),
        "predict-file", "JPEG-LS transfer syntax over bytes that are not JPEG-LS", cli=True)
    add("odd_length_pixels.dcm", dicom(pixel_bytes=b"\1" * 7), "predict-file",
        "7 bytes of pixel data for a 16 x 16 image", cli=True)


# --------------------------------------------------------------------------------------------------- zips


def zip_bytes(members: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_cases() -> None:
    add("zip_bomb.zip", zip_bytes([(f"scan{i}.png", b"\0" * 60_000_000) for i in range(3)]), "job-file",
        "3 members of 60 MB of zeros each (~180 KB compressed)")
    lying = bytearray(zip_bytes([("scan.png", b"\0" * 8_000_000)]))
    struct.pack_into("<I", lying, lying.index(b"PK\x03\x04") + 22, 1000)
    struct.pack_into("<I", lying, lying.index(b"PK\x01\x02") + 24, 1000)
    add("zip_lying_size.zip", bytes(lying), "job-file", "headers claim 1000 bytes; it inflates to 8 MB")
    inner = zip_bytes([("a.png", b"\0" * 1_000_000)])
    add("zip_nested.zip", zip_bytes([("inner.zip", inner)]), "job-file", "a zip inside the zip")
    add("zip_traversal.zip", zip_bytes([("../../../../tmp/evil.png", b"not an image")]), "job-file",
        "a member named ../../../../tmp/evil.png (and not an image)")
    add("zip_empty.zip", zip_bytes([]), "job-file", "a zip with no files")
    add("zip_truncated.zip", zip_bytes([("a.png", png(64, 64))])[:-30], "job-file", "a zip cut short")
    add("zip_not_zip.zip", b"PK\x03\x04" + b"\0" * 200, "job-file", "a zip signature and nothing else")
    many = zip_bytes([(f"{i}.png", b"") for i in range(10_001)], zipfile.ZIP_STORED)
    add("zip_many_members.zip", many, "job-file", "10,001 members")
    encrypted = bytearray(zip_bytes([("a.png", png(64, 64))], zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the 'encrypted' flag bit
        at = encrypted.index(signature) + offset
        struct.pack_into("<H", encrypted, at, struct.unpack_from("<H", encrypted, at)[0] | 1)
    add("zip_encrypted.zip", bytes(encrypted), "job-file", "a member flagged as encrypted")


# --------------------------------------------------------------------------------------------------- FHIR


def fhir_cases(row: dict[str, float]) -> None:
    def bundle(entries):
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    def obs(code, quantity, ref="urn:uuid:o1", **extra):
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": quantity,
            **extra,
        }
        return {"fullUrl": ref, "resource": resource}

    def put(name, payload, what):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        add(name, data, "fhir", what)

    put("fhir_not_bundle.json", {"resourceType": "Patient", "id": "p"}, "a Patient, not a Bundle")
    put("fhir_no_resource_type.json", {"entry": []}, "no resourceType")
    put("fhir_empty_bundle.json", bundle([]), "a Bundle with no entries")
    put("fhir_entry_not_object.json", bundle([1, "x", None]), "entries that are not objects")
    put("fhir_deep.json", b'{"resourceType": "Bundle", "entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "entries nested 50,000 deep")
    one = json.dumps(bundle([obs("0-0", {"value": 1})]))
    put("fhir_huge_number.json", one.replace('"value": 1', '"value": ' + "9" * 5000).encode(), "a 5,000-digit value")
    put("fhir_wrong_unit.json", bundle([obs("0-0", {"value": 14.1, "unit": "kg", "system":
        "http://unitsofmeasure.org", "code": "kg"})]), "kg for a length")
    put("fhir_not_ucum.json", bundle([obs("0-0", {"value": 14.1, "unit": "parsecs per fortnight"})]),
        "a unit that is not UCUM")
    put("fhir_value_string.json", bundle([obs("0-0", {"value": "fourteen"})]), "valueQuantity.value is text")
    put("fhir_duplicates_untimed.json",
        bundle([obs("0-0", {"value": 14.1, "code": "mm", "system": "http://unitsofmeasure.org"}, "urn:uuid:a"),
                obs("0-0", {"value": 28.0, "code": "mm", "system": "http://unitsofmeasure.org"}, "urn:uuid:b")]),
        "two Observations for one code and no effective times")
    put("fhir_bad_date.json", bundle([{"resource": {"resourceType": "Patient", "birthDate": "1970-13-45"}}]),
        "a birth date that does not exist")
    put("fhir_unknown_resource.json", bundle([{"resource": {"resourceType": "Spaceship"}}]),
        "a resource type FHIR does not have")
    put("fhir_nan.json", one.replace('"value": 1', '"value": NaN').encode(), "NaN as a value")
    put("fhir_xml.json", b'<Bundle xmlns="http://hl7.org/fhir"/>', "XML sent as FHIR JSON")


def generate(out: Path) -> list[dict]:
    """Write every corpus file into ``out``; the index entries."""
    global OUT
    OUT = Path(out)
    OUT.mkdir(parents=True, exist_ok=True)
    CASES.clear()
    row = wdbc_row()
    csv_cases(row)
    json_cases(row)
    image_cases()
    dicom_cases()
    zip_cases()
    fhir_cases(row)
    return list(CASES)


def main() -> None:
    import sys

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FILES
    cases = generate(out)
    (HERE / "index.json").write_text(json.dumps(cases, indent=1) + "\n")
    total = sum((out / c["file"]).stat().st_size for c in cases)
    print(f"{len(cases)} inputs, {total / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main()

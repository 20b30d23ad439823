"""DICOM reading on pydicom's real sample files (MEDAI_DATA_DIR/imaging/dicom)."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from conftest import require_data

from medai.data.dicom import apply_window, is_dicom, list_dicom_series, read_dicom, read_dicom_series
from medai.errors import MedAIError, NotFoundError

DICOM = "imaging/dicom"
MR_VARIANTS = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
]
NON_IMAGES = {
    "rtplan.dcm": "RT Plan Storage",
    "rtstruct.dcm": "RT Structure Set Storage",
    "test-SR.dcm": "Comprehensive SR Storage",
    "waveform_ecg.dcm": "12-lead ECG Waveform Storage",
}
CT5N = "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.6"
MR700 = "1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.118"


def sample(name: str):
    return require_data(f"{DICOM}/{name}")


def test_ct_rescale_gives_hounsfield_units():
    img = read_dicom(sample("CT_small.dcm"))
    assert img.pixels.shape == (128, 128) and img.pixels.dtype == np.float32
    assert img.modality == "CT" and img.photometric == "MONOCHROME2" and img.frames == 1
    stored = pydicom.dcmread(sample("CT_small.dcm")).pixel_array
    np.testing.assert_array_equal(img.pixels, stored.astype(np.float32) - 1024)
    assert -1100 < img.pixels.min() < 0 < img.pixels.max() < 3000
    assert img.meta["units"] == "HU" and img.meta["rescale_intercept"] == -1024
    assert img.spacing == pytest.approx((0.661468, 0.661468))
    assert "PatientName" not in str(img.meta) and "PatientID" not in img.meta


def test_mr_encodings_decode_to_identical_pixels():
    arrays = [read_dicom(sample(name)).pixels for name in MR_VARIANTS]
    assert arrays[0].shape == (64, 64)
    for name, arr in zip(MR_VARIANTS[1:], arrays[1:], strict=True):
        np.testing.assert_array_equal(arrays[0], arr, err_msg=name)
    assert read_dicom(sample("MR_small_RLE.dcm")).meta["transfer_syntax"] == "RLE Lossless"


def test_rgb_ultrasound_big_endian():
    img = read_dicom(sample("ExplVR_BigEnd.dcm"))
    assert img.pixels.shape == (60, 80, 3) and img.pixels.dtype == np.float32
    assert img.modality == "US" and img.is_color
    assert 0 <= img.pixels.min() and img.pixels.max() <= 255
    with pytest.raises(MedAIError, match="colour"):
        read_dicom(sample("ExplVR_BigEnd.dcm"), window=(128, 256))


def test_ybr_colour_is_converted_to_rgb(tmp_path):
    from pydicom.pixels import convert_color_space

    ds = pydicom.dcmread(sample("ExplVR_BigEnd.dcm"))
    rgb = ds.pixel_array
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds.PixelData = ybr.astype(np.uint8).tobytes()
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.PlanarConfiguration = 0  # bytes written pixel-interleaved
    path = tmp_path / "ybr.dcm"
    ds.save_as(path, enforce_file_format=True)
    img = read_dicom(path)
    assert img.photometric == "YBR_FULL" and img.pixels.shape == (60, 80, 3)
    assert np.abs(img.pixels - rgb.astype(np.float32)).max() <= 3  # YBR round trip rounding


def test_multiframe_rtdose_and_seg():
    dose = read_dicom(sample("rtdose.dcm"))
    assert dose.pixels.shape == (15, 10, 10) and dose.frames == 15
    assert dose.meta["dose_grid_scaling"] == pytest.approx(1e-6)
    assert 0.5 < dose.pixels.min() <= dose.pixels.max() < 2.0  # Gy-range after Dose Grid Scaling
    assert dose.meta["slice_spacing"] == pytest.approx(5.0)
    seg = read_dicom(sample("liver_1frame.dcm"))
    assert seg.pixels.shape == (512, 512) and set(np.unique(seg.pixels)) <= {0.0, 1.0}


def test_windowing():
    path = sample("CT_small.dcm")
    hu = read_dicom(path).pixels
    win = read_dicom(path, window=(40, 400)).pixels
    assert win.min() >= 0 and win.max() <= 1
    assert np.all(win[hu <= 40 - 200] == 0) and np.all(win[hu >= 40 + 200] == 1)
    inside = (hu > -150) & (hu < 230)
    assert inside.any() and np.all((win[inside] > 0) & (win[inside] < 1))
    assert np.all(np.diff(win.ravel()[np.argsort(hu.ravel(), kind="stable")]) >= 0)  # monotone
    mr = read_dicom(sample("MR_small.dcm"), window="file")
    assert mr.meta["window"] == (600.0, 1600.0)
    np.testing.assert_allclose(mr.pixels, apply_window(read_dicom(sample("MR_small.dcm")).pixels, 600, 1600))
    with pytest.raises(MedAIError, match="Window"):
        read_dicom(path, window="file")  # CT_small has no window in the file
    with pytest.raises(MedAIError, match="window"):
        read_dicom(path, window="soft-tissue")


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(sample("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    normal = read_dicom(sample("MR_small.dcm")).pixels
    inverted = read_dicom(path)
    assert inverted.photometric == "MONOCHROME1" and inverted.meta["inverted"]
    # inversion over the full stored range (int16): x -> (-32768 + 32767) - x
    np.testing.assert_array_equal(inverted.pixels, -1.0 - normal)
    win_n = read_dicom(sample("MR_small.dcm"), window="file").pixels
    win_i = read_dicom(path, window="file").pixels
    np.testing.assert_allclose(win_i, 1.0 - win_n, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NON_IMAGES))
def test_non_image_objects_are_rejected(name):
    with pytest.raises(MedAIError) as err:
        read_dicom(sample(name))
    msg = str(err.value)
    assert name in msg and NON_IMAGES[name] in msg and "expected a DICOM image" in msg
    assert "\n" not in msg


def test_not_dicom_truncated_and_corrupt(tmp_path):
    raw = sample("CT_small.dcm").read_bytes()
    text = tmp_path / "notes.dcm"
    text.write_text("this is not an image\n")
    with pytest.raises(MedAIError, match="notes.dcm: not a DICOM file"):
        read_dicom(text)
    assert not is_dicom(text)
    with pytest.raises(NotFoundError):
        read_dicom(tmp_path / "missing.dcm")
    for cut in (60, 140, 700, 5000, len(raw) // 2, len(raw) - 4000):
        bad = tmp_path / f"cut{cut}.dcm"
        bad.write_bytes(raw[:cut])
        with pytest.raises(MedAIError, match=f"cut{cut}.dcm"):
            read_dicom(bad)
    # corrupt pixel data length in a compressed file
    rle = sample("MR_small_RLE.dcm").read_bytes()
    bad = tmp_path / "rle_bad.dcm"
    bad.write_bytes(rle[:-1500])
    with pytest.raises(MedAIError, match="rle_bad.dcm"):
        read_dicom(bad)
    # garbage after a valid header
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(raw[:132] + bytes(range(256)) * 8)
    with pytest.raises(MedAIError, match="garbage.dcm"):
        read_dicom(garbage)


def test_is_dicom():
    assert is_dicom(sample("CT_small.dcm"))
    assert is_dicom(sample("rtstruct.dcm"))  # no preamble: forced parse
    assert not is_dicom(sample("PYDICOM_TEST_FILES_README.txt"))
    assert not is_dicom(require_data("imaging/medmnist/breastmnist.npz"))
    img = read_dicom(sample("rtdose.dcm"))
    assert img.frames == 15


def test_series_from_dicomdir_sorted_by_position():
    dicomdir = sample("dicomdir/DICOMDIR")
    series = list_dicom_series(dicomdir)
    assert len(series) == 13 and sum(s.n_files for s in series) == 31
    with pytest.raises(MedAIError, match="13 image series"):
        read_dicom_series(dicomdir)
    volume, meta = read_dicom_series(dicomdir, series_uid=CT5N)
    assert volume.shape == (5, 16, 16) and volume.dtype == np.float32
    assert meta["sorted_by"] == "ImagePositionPatient"
    positions = meta["slice_positions"]
    assert positions == sorted(positions)
    assert meta["spacing"][0] == pytest.approx(2.5) and meta["spacing"][1:] == pytest.approx((0.488281,) * 2)
    # InstanceNumber runs opposite to z here: sorted by position gives 10, 9, 8, 7, 6
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in meta["files"]]
    assert numbers == [10, 9, 8, 7, 6]
    first = read_dicom(meta["files"][0]).pixels
    np.testing.assert_array_equal(volume[0], first)


def test_series_from_folder_and_fallback(tmp_path):
    root = sample("dicomdir")
    # a folder with a DICOMDIR uses it; a plain folder is scanned
    plain = tmp_path / "plain"
    shutil.copytree(root / "98892003" / "MR700", plain / "MR700")
    (plain / "README.txt").write_text("not dicom")
    volume, meta = read_dicom_series(plain)
    assert volume.shape == (7, 16, 16)
    # orientations differ slice to slice: ordered by InstanceNumber instead
    assert meta["sorted_by"] == "InstanceNumber" and meta["series_uid"] == MR700
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in meta["files"]]
    assert numbers == sorted(numbers)
    v2, _ = read_dicom_series(root, series_uid=MR700)
    np.testing.assert_array_equal(volume, v2)
    with pytest.raises(NotFoundError, match="no series"):
        read_dicom_series(root, series_uid="1.2.3")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MedAIError, match="no DICOM image files"):
        read_dicom_series(empty)


def test_single_multiframe_file_as_series(tmp_path):
    folder = tmp_path / "dose"
    folder.mkdir()
    shutil.copy(sample("rtdose.dcm"), folder / "rtdose.dcm")
    volume, meta = read_dicom_series(folder)
    assert volume.shape == (15, 10, 10) and meta["sorted_by"] == "frames"

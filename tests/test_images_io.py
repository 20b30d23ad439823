"""Image loaders: files, class folders, CSV listings, MedMNIST npz, batch preparation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_data
from PIL import Image

from medai.data.images import (
    MIN_IMAGE_SIZE,
    load_image,
    load_images,
    load_medmnist_npz,
    prepare_images,
    read_image_csv,
    scan_image_folder,
)
from medai.errors import MedAIError, NotFoundError

RNG = np.random.default_rng(0)


def _png(path, shape=(32, 32), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,), "LA": (2,)}[mode]
    arr = RNG.integers(0, 256, size=(*shape, *channels), dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)
    return arr


# --- single files -----------------------------------------------------------------------------------


def test_load_png_jpeg_bmp_tiff(tmp_path):
    grey = _png(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), grey.astype(np.float32))
    rgb = _png(tmp_path / "c.png", mode="RGB")
    out = load_image(tmp_path / "c.png")
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, rgb)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    assert load_image(tmp_path / "c.jpg").shape == (32, 32, 3)
    Image.fromarray(grey).save(tmp_path / "g.bmp")
    np.testing.assert_array_equal(load_image(tmp_path / "g.bmp"), grey)
    wide = RNG.integers(0, 65535, size=(16, 20), dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "w.tif"), wide.astype(np.float32))


def test_load_nifti_npy_dicom(tmp_path):
    import nibabel as nib

    vol = RNG.normal(size=(10, 12, 14)).astype(np.float32)  # (X, Y, Z)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    out = load_image(tmp_path / "v.nii.gz")
    assert out.shape == (14, 12, 10)  # (D, H, W)
    np.testing.assert_allclose(out, np.transpose(vol, (2, 1, 0)))
    np.save(tmp_path / "a.npy", np.arange(100, dtype=np.int16).reshape(10, 10))
    assert load_image(tmp_path / "a.npy").dtype == np.float32
    ct = load_image(require_data("imaging/dicom/CT_small.dcm"))
    assert ct.shape == (128, 128) and ct.min() < 0  # Hounsfield units
    # extensionless DICOM (as in a DICOMDIR tree)
    assert load_image(require_data("imaging/dicom/dicomdir/77654033/CT2/17106")).shape == (16, 16)


def test_corrupt_and_truncated_files(tmp_path):
    _png(tmp_path / "ok.png", shape=(64, 64))
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MedAIError, match="trunc.png"):
        load_image(tmp_path / "trunc.png")
    (tmp_path / "junk.jpg").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(MedAIError, match="junk.jpg"):
        load_image(tmp_path / "junk.jpg")
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b" + b"x" * 40)
    with pytest.raises(MedAIError, match="bad.nii.gz"):
        load_image(tmp_path / "bad.nii.gz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MedAIError, match="obj.npy.*pickle"):
        load_image(tmp_path / "obj.npy")
    dcm = require_data("imaging/dicom/MR_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(dcm[:3000])
    with pytest.raises(MedAIError, match="cut.dcm"):
        load_image(tmp_path / "cut.dcm")
    with pytest.raises(MedAIError, match="rtplan.dcm.*no PixelData"):
        load_image(require_data("imaging/dicom/rtplan.dcm"))
    (tmp_path / "x.gif2").write_bytes(b"abc")
    with pytest.raises(MedAIError, match="unsupported image format"):
        load_image(tmp_path / "x.gif2")
    with pytest.raises(NotFoundError):
        load_image(tmp_path / "nope.png")


# --- preparation ------------------------------------------------------------------------------------


def test_prepare_2d_grey_and_rgb():
    grey = RNG.integers(0, 256, size=(20, 30), dtype=np.uint8)
    rgb = RNG.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    batch = prepare_images([grey, rgb], image_size=16, channels=1)
    assert batch.shape == (2, 1, 16, 16) and batch.dtype == np.float32
    assert batch.min() >= 0 and batch.max() <= 1
    batch3 = prepare_images([grey, rgb], image_size=(16, 24), channels=3)
    assert batch3.shape == (2, 3, 16, 24)
    np.testing.assert_array_equal(batch3[0, 0], batch3[0, 1])  # grey replicated
    # no resize, uint8 scaled by 255 ("auto"), luma weights for RGB -> grey
    out = prepare_images([rgb], image_size=None, channels=1)
    expected = (rgb.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-6)
    # float images: per-image min-max
    f = prepare_images([np.linspace(-1000, 3000, 100, dtype=np.float32).reshape(10, 10)], None)
    assert f.min() == 0 and f.max() == 1
    assert prepare_images([np.full((10, 10), 7.0)], None).max() == 0  # constant image


def test_prepare_3d():
    vols = [
        RNG.normal(size=(20, 24, 24)).astype(np.float32),
        RNG.normal(size=(10, 16, 16)).astype(np.float32),
    ]
    batch = prepare_images(vols, image_size=12, channels=1, spatial_dims=3)
    assert batch.shape == (2, 1, 12, 12, 12)
    assert prepare_images(vols, image_size=(8, 12, 12)).shape == (2, 1, 8, 12, 12)


def test_prepare_bad_inputs():
    grey = np.zeros((32, 32), np.uint8)
    with pytest.raises(MedAIError, match="scan.png: has 4 channels.*grey"):
        prepare_images([np.zeros((32, 32, 4), np.uint8)], 16, channels=1, names=["scan.png"])
    with pytest.raises(MedAIError, match="has 2 channels"):
        prepare_images([np.zeros((32, 32, 2), np.uint8)], 16, channels=3)
    with pytest.raises(MedAIError, match=f"tiny.png: image is 4x4 px.*at least {MIN_IMAGE_SIZE}"):
        prepare_images([np.zeros((4, 4), np.uint8)], 16, names=["tiny.png"])
    with pytest.raises(MedAIError, match="mixed 2D and 3D"):
        prepare_images([grey, np.zeros((16, 32, 32), np.float32)], 16)
    with pytest.raises(MedAIError, match="is 3D .* but 2D images were expected"):
        prepare_images([np.zeros((16, 32, 32), np.float32)], 16, spatial_dims=2)
    with pytest.raises(MedAIError, match="differ in size"):
        prepare_images([grey, np.zeros((40, 40), np.uint8)], None)
    with pytest.raises(MedAIError, match="NaN"):
        prepare_images([np.full((10, 10), np.nan, np.float32)], None)
    with pytest.raises(MedAIError, match="channels must be"):
        prepare_images([grey], 16, channels=2)
    with pytest.raises(MedAIError, match="no images"):
        prepare_images([], 16)


def test_load_images_names_the_file(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "rgba.png", mode="RGBA")
    _png(tmp_path / "la.png", mode="LA")
    assert load_images([tmp_path / "a.png"], 16).shape == (1, 1, 16, 16)
    with pytest.raises(MedAIError, match="rgba.png: has 4 channels"):
        load_images([tmp_path / "a.png", tmp_path / "rgba.png"], 16, channels=1)
    with pytest.raises(MedAIError, match="la.png: has 2 channels"):
        load_images([tmp_path / "la.png"], 16, channels=1)
    _png(tmp_path / "small.png", shape=(5, 40))
    with pytest.raises(MedAIError, match="small.png: image is 5x40 px"):
        load_images([tmp_path / "small.png"], 16)


# --- folders and CSV --------------------------------------------------------------------------------


def test_scan_image_folder(tmp_path):
    for cls, n in (("normal", 3), ("pneumonia", 2)):
        for i in range(n):
            _png(tmp_path / "data" / cls / f"{i}.png")
    _png(tmp_path / "data" / "pneumonia" / "sub" / "deep.png")
    (tmp_path / "data" / "normal" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "data" / "normal" / "notes.txt").write_text("ignore me")
    listing = scan_image_folder(tmp_path / "data")
    assert listing.classes == ["normal", "pneumonia"]
    assert len(listing) == 6 and listing.labels.dtype == np.int64
    assert listing.class_counts() == {"normal": 3, "pneumonia": 3}
    assert load_images(listing.paths, 16).shape == (6, 1, 16, 16)


def test_scan_image_folder_errors(tmp_path):
    with pytest.raises(NotFoundError):
        scan_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedAIError, match="empty"):
        scan_image_folder(tmp_path / "empty")
    _png(tmp_path / "one" / "cats" / "a.png")
    with pytest.raises(MedAIError, match="only one class"):
        scan_image_folder(tmp_path / "one")
    _png(tmp_path / "two" / "cats" / "a.png")
    (tmp_path / "two" / "dogs").mkdir(parents=True)
    (tmp_path / "two" / "dogs" / "readme.txt").write_text("no images")
    with pytest.raises(MedAIError, match="dogs.*has no images"):
        scan_image_folder(tmp_path / "two")
    _png(tmp_path / "flat" / "a.png")
    with pytest.raises(MedAIError, match="directly in the folder"):
        scan_image_folder(tmp_path / "flat")


def test_read_image_csv(tmp_path):
    for name in ("a.png", "b.png", "sub/c.png"):
        _png(tmp_path / "imgs" / name)
    csv_path = tmp_path / "imgs" / "labels.csv"
    csv_path.write_text("path,label\na.png,1\nb.png,0\nsub/c.png,1\n")
    listing = read_image_csv(csv_path)
    assert listing.classes == ["0", "1"] and listing.labels.tolist() == [1, 0, 1]
    assert listing.paths[2] == tmp_path / "imgs" / "sub" / "c.png"
    other = tmp_path / "imgs" / "other.csv"
    other.write_text("file,dx\na.png,benign\nb.png,malignant\n")
    assert read_image_csv(other, "file", "dx").classes == ["benign", "malignant"]
    assert read_image_csv(other, "file", None).labels is None


def test_read_image_csv_errors(tmp_path):
    _png(tmp_path / "a.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.png,1\nmissing.png,0\n")
    with pytest.raises(NotFoundError, match="row 3: image file 'missing.png' not found"):
        read_image_csv(bad)
    bad.write_text("image,label\na.png,1\n")
    with pytest.raises(MedAIError, match="no column 'path'"):
        read_image_csv(bad)
    bad.write_text("path,label\na.png,1\na.png,\n")
    with pytest.raises(MedAIError, match="row 3: empty 'label'"):
        read_image_csv(bad)
    bad.write_text("path,label\na.png,1\na.png,1\n")
    with pytest.raises(MedAIError, match="only one class"):
        read_image_csv(bad)
    bad.write_text("")
    with pytest.raises(MedAIError, match="empty"):
        read_image_csv(bad)
    with pytest.raises(NotFoundError):
        read_image_csv(tmp_path / "none.csv")


# --- MedMNIST -------------------------------------------------------------------------------------


def test_load_medmnist_real_files():
    data = load_medmnist_npz(require_data("imaging/medmnist/breastmnist.npz"))
    assert set(data) == {"train", "val", "test"}
    images, labels = data["train"]
    assert images.shape == (546, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (546,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [147, 399]
    vol, vlab = load_medmnist_npz(require_data("imaging/medmnist/adrenalmnist3d.npz"))["val"]
    assert vol.shape == (98, 28, 28, 28) and vlab.shape == (98,)
    batch = prepare_images(list(vol[:4]), 16, spatial_dims=3)
    assert batch.shape == (4, 1, 16, 16, 16) and set(np.unique(vol[:4])) <= {0, 255}


def test_load_medmnist_bad_files(tmp_path):
    imgs = np.zeros((5, 28, 28), np.uint8)
    labs = np.zeros((5, 1), np.uint8)
    full = {
        f"{s}_{k}": (imgs if k == "images" else labs)
        for s in ("train", "val", "test")
        for k in ("images", "labels")
    }
    missing = dict(full)
    del missing["val_labels"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(MedAIError, match="missing.npz: missing key.*val_labels"):
        load_medmnist_npz(tmp_path / "missing.npz")
    mismatch = dict(full, test_labels=np.zeros((4, 1), np.uint8))
    np.savez(tmp_path / "mismatch.npz", **mismatch)
    with pytest.raises(MedAIError, match="test has 5 images but 4 labels"):
        load_medmnist_npz(tmp_path / "mismatch.npz")
    shape = dict(full, train_images=np.zeros((5, 28), np.uint8))
    np.savez(tmp_path / "shape.npz", **shape)
    with pytest.raises(MedAIError, match="train_images has shape"):
        load_medmnist_npz(tmp_path / "shape.npz")
    floats = dict(full, train_images=np.full((5, 28, 28), 0.5))
    np.savez(tmp_path / "floats.npz", **floats)
    with pytest.raises(MedAIError, match="expected uint8"):
        load_medmnist_npz(tmp_path / "floats.npz")
    raw = require_data("imaging/medmnist/breastmnist.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(MedAIError, match="trunc.npz: corrupt or truncated"):
        load_medmnist_npz(tmp_path / "trunc.npz")
    with pytest.raises(NotFoundError):
        load_medmnist_npz(tmp_path / "absent.npz")

# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Issue 9, finding 1: image uploads could exhaust the server. Files are checked from their headers before
decoding, decoded at reduced size, one at a time, under a time budget that stops work whose request timed out."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_service_support import imaging_artifact  # noqa: F401

from medai import budget
from medai.errors import MedAIError


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _nifti_header_only(path: Path, shape=(600, 600, 600)) -> Path:
    """A .nii whose header claims ``shape`` (float32) but holds a few bytes of data."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    return path


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak resident set size (VmHWM)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_large_images_are_decoded_at_reduced_size(tmp_path):
    from medai.data.images import load_image, load_images_bounded

    path = tmp_path / "big.png"
    path.write_bytes(_png(8000, 8000))  # 64 Mpx, under the limit
    started = time.monotonic()
    arr = load_image(path, target=(28, 28))
    assert arr.shape == (57, 57) or min(arr.shape) >= 56  # at least twice the target, far below 8000
    batch = load_images_bounded([path, path], 28, names=["a.png", "b.png"])
    assert batch.shape == (2, 1, 28, 28)
    assert time.monotonic() - started < 10  # was ~90 s of resizing 81 Mpx in float64
    jpeg = tmp_path / "big.jpg"
    from PIL import Image

    Image.new("RGB", (4000, 3000), (200, 10, 10)).save(jpeg)
    assert max(load_image(jpeg, target=(28, 28)).shape[:2]) <= 1000  # JPEG decoded at 1/8 scale


def test_headers_are_checked_before_decoding(tmp_path):
    from medai.data.images import load_image

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png(9000, 9000))  # 78 KB, 81 Mpx: under Pillow's own limit
    nifti = _nifti_header_only(tmp_path / "huge.nii")
    npy = tmp_path / "huge.npy"
    with open(npy, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (600, 600, 600)}
        )
    limits = budget.Budget(60, max_file_pixels=64_000_000, max_file_voxels=160_000_000, max_total_pixels=10**9)
    _peak_rss_reset()
    before = _rss_mb()
    with budget.use(limits):
        for path in (bomb, nifti, npy):
            with pytest.raises(budget.BudgetExceeded, match="at most") as err:
                load_image(path, target=(28, 28), label="upload 0")
            assert str(tmp_path) not in str(err.value) and "upload 0" in str(err.value)
    assert _peak_rss_mb() - before < 50  # was +739 MB for the volume, ~0.9 GB for the PNG


def test_total_pixels_of_a_request_are_bounded(tmp_path):
    from medai.data.images import load_images_bounded

    path = tmp_path / "img.png"
    path.write_bytes(_png(2000, 2000))
    with budget.use(budget.Budget(60, max_file_pixels=64_000_000, max_total_pixels=10_000_000)):
        with pytest.raises(budget.BudgetExceeded, match="together"):
            load_images_bounded([path] * 4, 28)


def test_a_cancelled_budget_stops_between_files(tmp_path, monkeypatch):
    import medai.data.images as images

    path = tmp_path / "img.png"
    path.write_bytes(_png(64, 64))
    seen = []
    real = images.load_image

    def counting(p, **kw):
        seen.append(p)
        if len(seen) == 3:
            limits.cancel()  # the request timed out meanwhile
        return real(p, **kw)

    monkeypatch.setattr(images, "load_image", counting)
    limits = budget.Budget(60)
    with budget.use(limits), pytest.raises(budget.BudgetExceeded, match="stopped"):
        images.load_images_bounded([path] * 50, 28)
    assert len(seen) == 3


@pytest.mark.slow
def test_service_refuses_image_bombs_and_stops_timed_out_work(imaging_artifact, medai_home, monkeypatch):
    from fastapi.testclient import TestClient

    import medai.data.images as images
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    Registry().register(imaging_artifact, name="xray")
    app = create_app(Settings(job_worker=False, rate_limit=100_000, predict_timeout_s=1.0))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        h = {"Authorization": f"Bearer {key}"}
        url = "/v1/models/xray/predict"
        http.post(url, files=[("file", ("w.png", _png(32, 32), "image/png"))], headers=h)  # warm up
        _peak_rss_reset()
        before = _rss_mb()
        started = time.monotonic()
        files = [("file", (f"b{i}.png", _png(9000, 9000), "image/png")) for i in range(4)]
        r = http.post(url, files=files, headers=h)
        assert r.status_code == 422 and "at most 64,000,000 are accepted" in r.json()["detail"], r.text
        assert str(medai_home) not in r.text and "item-00000.png" in r.text
        assert time.monotonic() - started < 10
        assert _peak_rss_mb() - before < 200

        # work whose request timed out stops instead of running on
        calls, lock = [], threading.Lock()
        real = images.load_image

        def slow(p, **kw):
            with lock:
                calls.append(time.monotonic())
            time.sleep(0.2)
            return real(p, **kw)

        monkeypatch.setattr(images, "load_image", slow)
        files = [("file", (f"s{i}.png", _png(64, 64), "image/png")) for i in range(40)]
        r = http.post(url, files=files, headers=h)
        assert r.status_code == 504
        answered = time.monotonic()
        time.sleep(0.6)
        assert len(calls) < 12 and max(calls) < answered + 0.3  # 40 files would take 8 s; it stopped
        assert http.get("/health").status_code == 200


def test_budget_errors_are_user_errors():
    assert issubclass(budget.BudgetExceeded, MedAIError)
    spent = budget.Budget(0.0)
    time.sleep(0.01)
    with pytest.raises(budget.BudgetExceeded, match="time limit"):
        spent.check()

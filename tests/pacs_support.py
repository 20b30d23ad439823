"""Test support for the DICOM gateway: a real Orthanc on free loopback ports, synthetic studies, a C-STORE SCU,
and a toy image model trained through the road."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ORTHANC = shutil.which("Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PATIENT = "Doe^Jane"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    process: subprocess.Popen
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str):
        import httpx

        response = httpx.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def series_of(self, study_uid: str) -> list[dict]:
        """QIDO-RS: the series of a study (DICOM JSON), [] when Orthanc does not have it."""
        import httpx

        response = httpx.get(f"{self.dicomweb}/studies/{study_uid}/series", timeout=30)
        return [] if response.status_code in (204, 404) else response.json()

    def wait_for_modality(self, study_uid: str, modality: str, timeout: float = 90.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.series_of(study_uid) if s.get("00080060", {}).get("Value") == [modality]]
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"no {modality} series in study {study_uid} after {timeout} s")


def start_orthanc(folder: Path) -> Orthanc:
    """Orthanc with its own config and storage under ``folder``, DICOMweb on, loopback only."""
    if ORTHANC is None or not DICOMWEB_PLUGIN.exists():
        import os

        if os.environ.get("CI"):
            pytest.fail("Orthanc is not installed (make install runs apt-get install orthanc orthanc-dicomweb)")
        pytest.skip("Orthanc and its DICOMweb plugin are not installed (make install installs them)")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "medai-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "HttpServerEnabled": True, "DicomServerEnabled": True,
        "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1, "ConcurrentJobs": 1, "HttpThreadsCount": 8, "DicomThreadsCount": 4,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(process, http_port, dicom_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.get("/system")
            return server
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("Orthanc did not answer within 60 s")


def stop_orthanc(server: Orthanc) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


def toy_pixels(label: int, size: int, rng) -> np.ndarray:
    """The toy task of the test model: 'pneumonia' images carry a bright lower triangle."""
    image = rng.random((size, size)) * 0.3 + 0.7 * label * np.tri(size)
    return (image * 4000).astype(np.uint16)


def make_study(n: int, sizes=(64,), seed: int = 0, patient: str = PATIENT, modality: str = "DX",
               body_part: str = "CHEST", study_uid: str | None = None, series_uid: str | None = None,
               study_date: str = "20261101") -> list:
    """``n`` single-frame DX instances of one series with identifying attributes, sizes cycling over ``sizes``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    study_uid, series_uid = study_uid or generate_uid(), series_uid or generate_uid()
    out = []
    for i in range(n):
        size = sizes[i % len(sizes)]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = DigitalXRayImageStorageForPresentation
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient, "MRN-778899", "19610203", "F"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = study_date, "101500", "ACC-4455", "1"
        ds.ReferringPhysicianName, ds.InstitutionName = "Smith^John", "St Elsewhere Hospital"
        ds.Modality, ds.BodyPartExamined, ds.SeriesDescription = modality, body_part, "Chest PA"
        ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 1, i + 1, "TestVendor"
        ds.PatientOrientation = ["A", "F"]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = toy_pixels(i % 2, size, rng).tobytes()
        out.append(ds)
    return out


def push(datasets: list, port: int, calling: str = "MODALITY", called: str = "MEDAI", stop_after: int | None = None,
         on_sent=None) -> list[int]:
    """C-STORE ``datasets`` in one association (pynetdicom as a storescu); the status of each."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    for uid in sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}):
        ae.add_requested_context(uid[0], [uid[1]])
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return []
    statuses = []
    try:
        for i, ds in enumerate(datasets):
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status and "Status" in status else -1)
            if on_sent is not None:
                on_sent(i)
            if stop_after is not None and i + 1 >= stop_after:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def toy_model(tmp_path_factory) -> Path:
    """The toy model, trained once per test session and shared by every gateway test module."""
    pytest.importorskip("torch")
    root = tmp_path_factory.getbasetemp() / "gateway_toy_model"
    if not (root / "model" / "manifest.json").exists():
        root.mkdir(exist_ok=True)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MEDAI_HOME", str(root / "home"))
            train_toy_model(root)
    return root / "model"


def train_toy_model(folder: Path, size: int = 28) -> Path:
    """A small CNN on the toy task (one epoch, ~15 s), trained through the road."""
    from medai.modalities.imaging.data import image_dataset
    from medai.road import TrainOptions, train
    from medai.tasks.catalog import get_task

    rng = np.random.default_rng(0)
    images, labels, official, start = [], [], {}, 0
    for split, n in zip(("train", "val", "test"), (64, 48, 32), strict=True):
        y = rng.integers(0, 2, n)
        images += [toy_pixels(int(k), size, rng).astype(np.float32) / 4000 for k in y]
        labels += list(y)
        official[split] = np.arange(start, start + n)
        start += n
    data = image_dataset(images, np.asarray(labels), ["normal", "pneumonia"], 2, size, source="toy",
                         official=official)
    out = folder / "model"
    train(get_task("pneumonia-xray"), data, out,
          TrainOptions(learner="small-cnn", n_boot=20, show_progress=False, extra={"epochs": 1, "threads": 1}))
    return out

"""The gateway against a real PACS (Orthanc with its DICOMweb plugin, started here on free loopback ports):
a study pushed by C-STORE comes back into Orthanc as an SR and Grad-CAM captures in the source study; the same
through DICOMweb pull mode; and a gateway killed mid-study and restarted processes every instance once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pacs_support import PATIENT, free_port, make_study, push, start_orthanc, stop_orthanc, toy_model
from test_gateway import assert_valid, describe_sr, run, wait_for

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    stop_orthanc(server)


@pytest.fixture
def xray(tmp_path_factory):
    from medai.registry import Registry

    return Registry().register(toy_model(tmp_path_factory), name="xray")


def in_pacs(orthanc, study_uid: str) -> dict[str, list]:
    """Modality -> SOP Instance UIDs of the study in Orthanc (QIDO-RS)."""
    import httpx

    found = collections.defaultdict(list)
    for series in orthanc.series_of(study_uid):
        uid = series["0020000E"]["Value"][0]
        instances = httpx.get(f"{orthanc.dicomweb}/studies/{study_uid}/series/{uid}/instances", timeout=30).json()
        found[series["00080060"]["Value"][0]] += [i["00080018"]["Value"][0] for i in instances]
    return dict(found)


def fetch_sr(orthanc, study_uid: str, tmp_path: Path):
    """The SR as stored in Orthanc (WADO-RS), read back with highdicom."""
    import highdicom as hd
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=orthanc.dicomweb)
    series = orthanc.wait_for_modality(study_uid, "SR")[0]["0020000E"]["Value"][0]
    [ds] = client.retrieve_series(study_instance_uid=study_uid, series_instance_uid=series)
    path = tmp_path / "sr-from-orthanc.dcm"
    ds.save_as(path, enforce_file_format=True)
    return hd.sr.srread(path), path


def check_result(orthanc, study, tmp_path, model_version: int) -> dict[str, list]:
    study_uid = study[0].StudyInstanceUID
    sr, path = fetch_sr(orthanc, study_uid, tmp_path)
    assert_valid(path)
    assert sr.StudyInstanceUID == study_uid and str(sr.PatientName) == PATIENT  # the source's patient, no more
    groups = describe_sr(sr)
    assert len(groups) == len(study)
    sources = {ds.SOPInstanceUID for ds in study}
    for group in groups:
        assert group["algorithm"] == ("xray", str(model_version))
        assert group["finding"] in ("normal", "pneumonia") and 0 <= group["probability"] <= 1
        assert group["certainty"] and group["refer"] in ("Yes", "No")
        assert set(group["sources"]) <= sources
    assert {uid for g in groups for uid in g["sources"]} == sources
    return in_pacs(orthanc, study_uid)


def test_c_store_study_comes_back_as_sr_and_overlay(orthanc, xray, tmp_path):
    from medai.gateway.config import Destination, GatewayConfig
    from medai.gateway.routing import Router
    from medai.gateway.service import Gateway

    study = make_study(6, sizes=(28, 96, 224))
    assert push(study, orthanc.dicom_port, called="ORTHANC") == [0] * 6  # the study is in the PACS
    config = GatewayConfig(port=0, allowed_aes=("MODALITY",), settle_s=1, fhir_dir=tmp_path / "fhir", retention_hours=1,
                           send_to=Destination(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port))
    with Gateway(config, Router.single("xray")) as gateway:
        assert push(study, gateway.port) == [0] * 6
        wait_for(lambda: gateway.store.summary()["batches"].get("done"), timeout=120)
        stored = check_result(orthanc, study, tmp_path, xray.version)
        assert len(stored["SR"]) == 1 and len(stored["OT"]) == 6 and len(stored["DX"]) == 6
        # Orthanc's REST API files the SR under the very study it received from the modality
        [sr_hit] = orthanc_post(orthanc, "/tools/lookup", stored["SR"][0])
        [dx_hit] = orthanc_post(orthanc, "/tools/lookup", study[0].SOPInstanceUID)
        assert orthanc.get(sr_hit["Path"] + "/study")["ID"] == orthanc.get(dx_hit["Path"] + "/study")["ID"]
        actions = collections.Counter(r["action"] for r in gateway.audit.export())
        assert actions["gateway.receive"] == 6 and actions["gateway.inference"] == 6
        assert actions["gateway.send"] == 7 and actions["gateway.association"] == 1
        assert gateway.audit.verify().ok
        assert len(list((tmp_path / "fhir").glob("*.json"))) == 1
        # a crash after sending but before recording it: the batch runs again and re-sends the same objects
        from medai.gateway.store import ResultRow

        batch = gateway.store.batches()[0]
        with gateway.store._sessions.begin() as session:
            session.query(ResultRow).delete()
        gateway.store.set_batch(batch.id, status="queued")
        wait_for(lambda: gateway.store.batch(batch.id).status == "done", timeout=60)
        assert in_pacs(orthanc, study[0].StudyInstanceUID) == stored  # replaced, not duplicated


def orthanc_post(orthanc, path: str, body: str):
    import httpx

    response = httpx.post(orthanc.url + path, content=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_dicomweb_pull_mode(orthanc, xray, tmp_path, capsys):
    study = make_study(4, sizes=(64,), seed=3, study_date="20261201")
    assert push(study, orthanc.dicom_port, called="ORTHANC") == [0] * 4
    pull = ["gateway", "pull", "--url", orthanc.dicomweb, "--model", "xray", "--once", "--since", "20261201"]
    code, out, err = run(pull, capsys)
    assert code == 0, err
    assert "'studies': 1" in out and "'queued': 4" in out
    stored = check_result(orthanc, study, tmp_path, xray.version)
    assert len(stored["SR"]) == 1 and len(stored["OT"]) == 4
    code, out, err = run(pull, capsys)
    assert code == 0 and "'queued': 0" in out  # known instances and MedAI's own results are not pulled again
    assert in_pacs(orthanc, study[0].StudyInstanceUID) == stored


def start_gateway(port: int, orthanc, home: Path) -> subprocess.Popen:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    env = dict(os.environ, MEDAI_HOME=str(home))
    process = subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "gateway", "--host", "127.0.0.1", "--port", str(port), "--ae-title",
         "MEDAI", "--allow-ae", "MODALITY", "--model", "xray", "--settle", "3",
         "--send-to", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(home / "gateway.log", "ab"))  # noqa: SIM115
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "gateway.log").read_text()[-3000:]
        assoc = ae.associate("127.0.0.1", port, ae_title="MEDAI")
        if assoc.is_established:
            assoc.release()
            return process
        time.sleep(0.3)
    process.kill()
    raise AssertionError("the gateway did not answer C-ECHO within 90 s")


def test_gateway_killed_mid_study_processes_every_instance_once(orthanc, xray, medai_home, tmp_path):
    from medai.gateway.network import uid_sha
    from medai.gateway.store import GatewayStore
    from medai.privacy.audit import AuditLog

    study = make_study(12, sizes=(64,), seed=5)
    port = free_port()
    gateway = start_gateway(port, orthanc, medai_home)
    statuses = push(study, port, stop_after=5, on_sent=lambda i: i == 4 and os.kill(gateway.pid, signal.SIGKILL))
    gateway.wait(30)
    assert statuses[:5] == [0] * 5
    gateway = start_gateway(port, orthanc, medai_home)
    try:
        assert push(study, port) == [0] * 12  # the sender starts the study again, from the first image
        store = GatewayStore()
        wait_for(lambda: store.summary()["batches"].get("done"), timeout=120)
        stored = check_result(orthanc, study, tmp_path, xray.version)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
    assert len(stored["SR"]) == 1 and len(stored["OT"]) == 12
    assert store.summary()["instances"] == {"done": 12} and store.summary()["batches"] == {"done": 1}
    rows = list(AuditLog().export())
    inferences = collections.Counter(r["input_sha256"] for r in rows if r["action"] == "gateway.inference")
    assert inferences == {uid_sha(ds.SOPInstanceUID): 1 for ds in study}  # each instance inferred exactly once
    receipts = collections.Counter(r["outcome"] for r in rows if r["action"] == "gateway.receive")
    assert receipts == {"ok": 12, "duplicate": 5}
    assert AuditLog().verify().ok

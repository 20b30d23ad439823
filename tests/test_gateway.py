"""The DICOM gateway without a PACS: routing rules and the dry run, the encrypted spool, the durable queue, the
SR and captures, and the Storage SCP's refusals (unknown AE title, malformed instances, back-pressure, TLS)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pacs_support import PATIENT, free_port, make_study, push, toy_model

from medai.errors import IntegrityError, MedAIError

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")


def run(argv, capsys):
    from medai.cli import main

    saved = sys.argv
    sys.argv = ["medai", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def toy_artifact(tmp_path_factory) -> Path:
    return toy_model(tmp_path_factory)


@pytest.fixture
def xray(toy_artifact):
    from medai.registry import Registry

    return Registry().register(toy_artifact, name="xray")


RULES = """
[[rule]]
name = "chest"
model = "xray"
modality = ["DX", "CR"]
body_part = "chest"
min_size = 28

[[rule]]
name = "big"
model = "xray:1"
series_description = "*HEAD*"
max_size = 512
"""


# -- routing ---------------------------------------------------------------------------------------------------
def test_rules_route_series_and_report_the_unfit(xray, tmp_path, capsys):
    from medai.gateway.routing import Router

    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    router = Router.load(rules)
    assert router.check_models() == {"xray": 2, "xray:1": 2}
    folder = tmp_path / "study"
    folder.mkdir()
    for i, ds in enumerate(make_study(3, sizes=(64,)) + make_study(2, modality="CT", body_part="HEAD")
                           + make_study(1, sizes=(16,))):
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
    (folder / "notes.txt").write_text("not dicom")
    code, out, err = run(["gateway", "route", folder, "--rules", rules, "--json"], capsys)
    assert code == 0, err
    rows = {row["instances"]: row for row in json.loads(out)}
    assert rows[3]["model"] == "xray" and rows[3]["rule"] == "chest"
    assert rows[2]["model"] is None and "Modality CT not in ['DX', 'CR']" in rows[2]["reason"]
    assert "SeriesDescription does not match '*HEAD*'" in rows[2]["reason"]
    assert rows[1]["model"] is None and "smaller than min_size 28" in rows[1]["reason"]
    code, out, _ = run(["gateway", "route", folder, "--model", "xray"], capsys)
    assert code == 0 and "xray" in out


@pytest.mark.parametrize("text, message", [
    ("[[rule]]\nmodality='DX'\n", "'model'"),
    ("[[rule]]\nmodel='xray'\ncolour='red'\n", "unknown key(s) colour"),
    ("[[rule]]\nmodel='xray'\nmin_size=0\n", "min_size: expected a whole number >= 1"),
    ("[[rule]]\nmodel='xray'\nsop_class='Nonsense Storage'\n", "not a UID nor the name"),
    ("[rules]\nx=1\n", "expected only [[rule]] tables"),
    ("[[rule]\n", "not valid TOML"),
])
def test_bad_rules_are_refused_with_the_reason(tmp_path, capsys, text, message):
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    (tmp_path / "x.dcm").write_bytes(b"")
    code, _, err = run(["gateway", "route", tmp_path, "--rules", rules], capsys)
    assert code == 2 and message in err


def test_rules_naming_a_missing_model_are_refused_before_listening(xray, tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nmodel = 'nosuch'\n")
    code, _, err = run(["gateway", "--port", free_port(), "--allow-ae", "MOD", "--rules", rules], capsys)
    assert code == 2 and "no model named 'nosuch'" in err
    code, _, err = run(["gateway", "--port", free_port(), "--model", "xray"], capsys)
    assert code == 2 and "--allow-ae" in err
    code, _, err = run(["gateway", "--allow-ae", "BAD\\AE", "--model", "xray"], capsys)
    assert code == 2 and "backslash" in err


def test_grad_cam_of_a_batch_equals_image_by_image(toy_artifact):
    import numpy as np

    from medai.modalities.imaging.figures import gradcam_png, gradcam_pngs
    from medai.road import load_model

    model = load_model(toy_artifact)
    X = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    assert gradcam_pngs(model.learner, X, 2, chunk=2) == [gradcam_png(model.learner, x, 2) for x in X]


# -- spool and queue -------------------------------------------------------------------------------------------
def test_spool_is_encrypted_and_tamper_evident(tmp_path, monkeypatch):
    from medai.gateway.spool import KEY_ENV, Spool, load_key

    spool = Spool(tmp_path / "spool", load_key(tmp_path))
    assert (tmp_path / "spool.key").stat().st_mode & 0o777 == 0o600
    name = spool.put("1.2.3", f"PatientName={PATIENT}".encode())
    assert "1.2.3" not in name and PATIENT.encode() not in (tmp_path / "spool" / name).read_bytes()
    assert spool.get(name) == f"PatientName={PATIENT}".encode()
    blob = bytearray((tmp_path / "spool" / name).read_bytes())
    blob[-1] ^= 1
    (tmp_path / "spool" / name).write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="does not decrypt"):
        spool.get(name)
    monkeypatch.setenv(KEY_ENV, "c2hvcnQ=")
    with pytest.raises(MedAIError, match="32 bytes"):
        load_key(tmp_path)


def test_queue_is_idempotent_and_survives_a_dead_worker():
    from medai.gateway.store import GatewayStore

    store = GatewayStore(lease_s=0.2, max_attempts=2)
    assert store.intake("1.1", "9", "5", "a.dcm", "MOD") is True
    assert store.intake("1.1", "9", "5", "a.dcm", "MOD") is False  # the same SOP Instance UID again
    assert store.intake("1.2", "9", "5", "b.dcm", "MOD") is True
    assert store.claim("w1") is None  # still open: its association has not ended
    time.sleep(0.05)
    assert store.settle(0.01, receiving={"5"}) == 0  # a slow sender's series is not cut while it still sends
    assert store.close(["5"]) == 1
    batch = store.claim("w1")
    assert batch is not None and len(store.instances(batch.id)) == 2
    assert store.claim("w2") is None  # leased
    time.sleep(0.3)
    again = store.claim("w2")  # w1 died: its lease ran out
    assert again.id == batch.id and again.attempts == 2
    assert store.retry(again, "PACS down", 0.01) == "failed"  # attempts used up
    assert store.summary()["batches"] == {"failed": 1}
    store.intake("1.3", "9", "5", "c.dcm", "MOD")  # a late instance opens a new batch of the series
    store.set_batch(store.batches()[-1].id, status="running", worker="me")
    assert store.requeue_own("me") == 1


# -- results ---------------------------------------------------------------------------------------------------
def test_sr_and_capture_carry_model_version_probability_and_uncertainty(tmp_path):
    import highdicom as hd
    import numpy as np
    from PIL import Image

    from medai.gateway import results

    sources = make_study(2, sizes=(64,))
    png = tmp_path / "cam.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28, 3)) * 255).astype("uint8")).save(png)
    items = [{"label": "pneumonia", "probabilities": {"normal": 0.3, "pneumonia": 0.7}, "coverage": 0.9,
              "prediction_set": ["normal", "pneumonia"], "uncertain": True},
             {"label": "normal", "probabilities": {"normal": 0.95, "pneumonia": 0.05}, "coverage": 0.9,
              "prediction_set": ["normal"], "uncertain": False}]
    findings = [results.Finding([ds], item, png.read_bytes()) for ds, item in zip(sources, items, strict=True)]
    sr = results.build_sr("b1", "xray", "3", ["normal", "pneumonia"], findings)
    again = results.build_sr("b1", "xray", "3", ["normal", "pneumonia"], findings)
    assert sr.SOPInstanceUID == again.SOPInstanceUID  # the same batch gives the same object: resend-safe
    assert sr.StudyInstanceUID == sources[0].StudyInstanceUID and sr.SeriesInstanceUID != sources[0].SeriesInstanceUID
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    described = describe_sr(hd.sr.srread(path))
    assert described[0]["algorithm"] == ("xray", "3")
    assert described[0]["finding"] == "pneumonia" and described[0]["probability"] == pytest.approx(0.7)
    assert described[0]["certainty"].startswith("Uncertain") and described[0]["refer"] == "Yes"
    assert not described[1]["certainty"].startswith("Uncertain") and described[1]["refer"] == "No"
    assert described[1]["sources"] == [sources[1].SOPInstanceUID]
    assert_valid(path)
    sc = results.build_sc("b1", "xray", "3", findings[0], 1)
    assert (sc.Rows, sc.Columns, sc.SamplesPerPixel) == (64, 64, 3) and sc.StudyInstanceUID == sr.StudyInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == sources[0].SOPInstanceUID
    sc_path = tmp_path / "sc.dcm"
    sc.save_as(sc_path, enforce_file_format=True)
    assert_valid(sc_path)
    bundle = results.fhir_bundle("b1", "xray", "3", findings)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["DiagnosticReport", "RiskAssessment", "RiskAssessment"]
    assert bundle["entry"][1]["resource"]["prediction"][0]["probabilityDecimal"] == pytest.approx(0.7)
    assert PATIENT not in json.dumps(bundle)


def describe_sr(sr) -> list[dict]:
    """Per measurement group of a TID 1500 report read back with highdicom: what a viewer shows."""
    out = []
    for group in sr.content.get_image_measurement_groups():
        container = group[0]
        algorithm = next(item for item in container.ContentSequence
                         if item.ConceptNameCodeSequence[0].CodeValue == "111001")
        version = next(item for item in container.ContentSequence
                       if item.ConceptNameCodeSequence[0].CodeValue == "111003")
        evaluations = {e.name.meaning: e.value.meaning for e in group.get_qualitative_evaluations()}
        probability = [m.value for m in group.get_measurements() if m.name.meaning == "Probability"]
        sources = [s.referenced_sop_instance_uid for s in group.source_images]
        out.append({"algorithm": (algorithm.TextValue, version.TextValue), "finding": group.finding_type.meaning,
                    "certainty": evaluations.get("Certainty of Finding"),
                    "refer": evaluations.get("Uncertain - refer to a clinician"),
                    "probability": probability[0] if probability else None, "sources": sources})
    return out


def assert_valid(path: Path) -> None:
    """dciodvfy (dicom3tools) finds no error in the object, where it is installed."""
    if shutil.which("dciodvfy") is None:
        return
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    assert not errors, errors


# -- the Storage SCP -------------------------------------------------------------------------------------------
@pytest.fixture
def gateway(xray, tmp_path):
    from medai.gateway.config import GatewayConfig
    from medai.gateway.routing import Router
    from medai.gateway.service import Gateway

    def start(**options):
        options.setdefault("allowed_aes", ("MODALITY",))
        config = GatewayConfig(port=0, settle_s=1, **options)
        return Gateway(config, Router.single("xray")).start()

    started = []
    yield lambda **o: started.append(start(**o)) or started[-1]
    for g in started:
        g.stop()


def wait_for(predicate, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_unknown_ae_title_is_refused_and_audited(gateway):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    g = gateway()
    ae = AE(ae_title="INTRUDER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", g.port, ae_title="MEDAI")
    assert assoc.is_rejected
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", g.port, ae_title="MEDAI")
    assert assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    rows = wait_for(lambda: [r for r in g.audit.export() if r["action"].startswith("gateway.")
                             and r["action"] != "gateway.start"] if len(list(g.audit.export())) >= 4 else None)
    refused = [r for r in rows if r["outcome"] == "denied"]
    assert len(refused) == 1 and refused[0]["client"].startswith("INTRUDER@127.0.0.1")
    assert refused[0]["detail"]["reason"] == "calling AE title not allowed"
    assert {r["action"] for r in rows} >= {"gateway.association", "gateway.echo"}
    assert g.audit.verify().ok


def test_malformed_instances_are_reported_and_the_queue_goes_on(gateway, medai_home):
    from pydicom.uid import JPEG2000Lossless

    g = gateway()
    study = make_study(4, sizes=(32,))
    del study[1].PixelData  # an image without pixel data
    study[2].file_meta.TransferSyntaxUID = JPEG2000Lossless  # claims JPEG 2000; the pixels are not
    study[2].PixelData = b"\x00" * 64
    statuses = push(study, g.port)
    assert statuses[0] == 0 and statuses[1] == 0xA900 and statuses[3] == 0
    wait_for(lambda: g.store.summary()["batches"].get("done"))
    summary = g.store.summary()
    assert summary["instances"] == {"done": 2, "failed": 1, "rejected": 1}
    reasons = {p["status"]: p["reason"] for p in summary["problems"]}
    assert "without pixel data" in reasons["rejected"] and "cannot read the image" in reasons["failed"]
    code_rows = [r for r in g.audit.export() if r["action"] == "gateway.receive"]
    assert sorted(r["outcome"] for r in code_rows) == ["ok", "ok", "ok", "rejected"]
    # nothing identifying was written unencrypted, and nothing is left in the spool once done
    for path in medai_home.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert PATIENT.encode() not in path.read_bytes(), path
    assert not list((medai_home / "gateway" / "spool").iterdir())


def test_back_pressure_answers_out_of_resources(gateway):
    g = gateway(max_pending=2)
    g.worker.stop()  # nothing drains the queue
    statuses = push(make_study(3, sizes=(28,)), g.port)
    assert statuses == [0, 0, 0xA700]
    assert [r["outcome"] for r in g.audit.export() if r["action"] == "gateway.receive"][-1] == "busy"


def test_tls_association(gateway, tmp_path):
    import ssl

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                           "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
    if made.returncode != 0:
        pytest.skip("openssl is not available")
    g = gateway(tls_cert=cert, tls_key=key)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", g.port, ae_title="MEDAI", tls_args=(client, "localhost"))
    assert assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    plain = AE(ae_title="MODALITY")
    plain.add_requested_context(Verification)
    plain.acse_timeout = plain.network_timeout = 3
    assert not plain.associate("127.0.0.1", g.port, ae_title="MEDAI").is_established


def test_a_3d_model_runs_once_per_volume(tmp_path, tmp_path_factory):
    """A CT series goes to a 3D model as one volume: one finding for the series, referencing every slice."""
    import numpy as np

    from medai.gateway.config import GatewayConfig
    from medai.gateway.routing import Router
    from medai.gateway.service import Gateway
    from medai.modalities.imaging.data import image_dataset
    from medai.registry import Registry
    from medai.road import TrainOptions, train
    from medai.tasks.catalog import get_task

    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 32)
    volumes = [(rng.random((8, 16, 16)) * 0.3 + 0.7 * k * np.tri(16)[None]).astype(np.float32) for k in y]
    data = image_dataset(volumes, y, ["normal", "hyperplasia"], 3, 16, source="toy3d",
                         official={"train": np.arange(16), "val": np.arange(16, 24), "test": np.arange(24, 32)})
    train(get_task("adrenal-ct-3d"), data, tmp_path / "ct",
          TrainOptions(learner="small-cnn", n_boot=10, show_progress=False, extra={"epochs": 1, "threads": 1}))
    Registry().register(tmp_path / "ct", name="ct3d")
    study = make_study(8, sizes=(32,), modality="CT", body_part="ABDOMEN")
    for i, ds in enumerate(study):
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, float(7 - i)]
        del ds.PatientOrientation
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nname='ct'\nmodel='ct3d'\nmodality='CT'\n")
    with Gateway(GatewayConfig(port=0, allowed_aes=("MODALITY",)), Router.load(rules)) as g:
        assert push(study, g.port) == [0] * 8
        wait_for(lambda: g.store.summary()["batches"].get("done"))
        [batch] = g.store.batches()
        assert batch.outputs["findings"] == 1 and len(batch.outputs["captures"]) == 1
        assert all(r.result["volume"] for r in g.store.instances(batch.id))
        assert len({r["input_sha256"] for r in g.audit.export() if r["action"] == "gateway.inference"}) == 8
        assert push(make_study(1, sizes=(32,), modality="CT"), g.port) == [0]  # one slice: no volume
        wait_for(lambda: g.store.summary()["batches"].get("unfit"))
        assert "a 3D model needs a volume" in g.store.summary()["problems"][0]["reason"]


def test_an_unreachable_pacs_is_retried_then_reported(gateway, capsys):
    from medai.gateway.config import Destination

    g = gateway(send_to=Destination(ae_title="PACS", host="127.0.0.1", port=free_port()), retry_s=0.1,
                max_attempts=2)
    assert push(make_study(2, sizes=(28,)), g.port) == [0, 0]
    wait_for(lambda: g.store.summary()["batches"].get("failed"))
    [batch] = g.store.batches()
    assert batch.attempts == 2 and "cannot associate with PACS@127.0.0.1" in batch.error
    assert [r["outcome"] for r in g.audit.export() if r["action"] == "gateway.batch"] == ["error:queued",
                                                                                          "error:failed"]
    code, out, _ = run(["gateway", "status", "--json"], capsys)
    assert code == 0 and json.loads(out)["batches"] == {"failed": 1}

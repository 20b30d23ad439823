# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The hostile-input corpus (tests/corpus/): every malformed CSV, JSON body, image, DICOM, NIfTI, zip and FHIR
Bundle is answered by a clear 4xx (never a 5xx, never accepted), the server keeps answering and its memory
stays bounded; the inputs the command line reads give exit code 2 with a one-line message."""

from __future__ import annotations

import json
import mimetypes
import sys
from pathlib import Path

import pytest
from test_service_support import imaging_artifact, wdbc_artifact, wdbc_rows  # noqa: F401

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import make_corpus

    folder = tmp_path_factory.mktemp("corpus")
    cases = make_corpus.generate(folder)
    return folder, cases


def test_corpus_index_is_current_and_large_enough(corpus):
    _, cases = corpus
    assert cases == json.loads((HERE / "index.json").read_text()), "run tests/corpus/make_corpus.py"
    assert len(cases) >= 50
    kinds = {c["route"] for c in cases}
    assert kinds == {"predict-json", "predict-file", "job-csv", "job-file", "fhir"}
    names = " ".join(c["file"] for c in cases)
    for must in (".csv", ".json", ".png", ".jpg", ".dcm", ".nii", ".zip", "fhir_", "bomb"):
        assert must in names


def _vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(key)


def test_every_corpus_input_is_a_clear_4xx(corpus, wdbc_artifact, imaging_artifact, wdbc_rows, medai_home):
    from fastapi.testclient import TestClient

    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    folder, cases = corpus
    Registry().register(wdbc_artifact, name="wdbc")
    Registry().register(imaging_artifact, name="xray")
    app = create_app(Settings(job_worker=False, rate_limit=100_000))
    results = []
    with TestClient(app, raise_server_exceptions=False) as http:
        state = app.state.medai
        _, key = state.keys.create("corpus", "admin")
        h = {"Authorization": f"Bearer {key}"}
        columns = [c["name"] for c in http.get("/v1/models/wdbc", headers=h).json()["input_schema"]]
        mapping = {f"{i}-0": col for i, col in enumerate(columns)}
        r = http.put("/v1/admin/models/wdbc/loinc-mapping", json={"mapping": mapping, "units": {columns[0]: "mm"}},
                     headers=h)
        assert r.status_code == 200, r.text
        # warm up both models, then measure the peak from here
        assert http.post("/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=h).status_code == 200
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set size
        baseline = _vm("VmRSS")
        for case in cases:
            data = (folder / case["file"]).read_bytes()
            name, route = case["file"], case["route"]
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if route == "predict-json":
                r = http.post("/v1/models/wdbc/predict", content=data,
                              headers={**h, "Content-Type": "application/json"})
            elif route == "predict-file":
                r = http.post("/v1/models/xray/predict", files={"file": (name, data, ctype)}, headers=h)
            elif route == "job-csv":
                r = http.post("/v1/jobs", data={"model": "wdbc"}, files={"file": (name, data, "text/csv")}, headers=h)
            elif route == "job-file":
                r = http.post("/v1/jobs", data={"model": "xray"}, files={"file": (name, data, ctype)}, headers=h)
            else:
                r = http.post("/v1/fhir/RiskAssessment/$predict?model=wdbc", content=data,
                              headers={**h, "Content-Type": "application/fhir+json"})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            results.append((name, r.status_code, str(body.get("detail", r.text))[:160]))
            assert http.get("/health").status_code == 200, f"server down after {name}"
        peak = _vm("VmHWM")
        # the server still does its work
        assert http.post("/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=h).status_code == 200
    bad = [r for r in results if not 400 <= r[1] < 500]
    assert not bad, "\n".join(map(str, bad))
    vague = [r for r in results if len(r[2]) < 12 or "internal" in r[2]]
    assert not vague, vague
    leaks = [r for r in results if str(medai_home) in r[2] or "/tmp/" in r[2]]
    assert not leaks, leaks
    assert peak - baseline < 600, f"peak memory grew {peak - baseline:.0f} MB over the corpus"
    assert not list((medai_home / "jobs").iterdir()), "a refused job left files behind"
    assert not any((medai_home / "uploads").iterdir()) if (medai_home / "uploads").exists() else True


def test_command_line_refuses_the_corpus_with_exit_2(corpus, wdbc_artifact, imaging_artifact, tmp_path, capsys,
                                                     monkeypatch):
    from medai.cli import main

    folder, cases = corpus
    failures = []
    for case in cases:
        if not case["cli"]:
            continue
        model = wdbc_artifact if case["route"] == "job-csv" else imaging_artifact
        monkeypatch.setattr(sys, "argv", ["medai", "predict", str(model), str(folder / case["file"]),
                                          "-o", str(tmp_path / "out.csv")])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err.strip()
        if code != 2 or not err.startswith("error:") or "Traceback" in err:
            failures.append((case["file"], code, err[-200:]))
    assert not failures, "\n".join(map(str, failures))

# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Implausible inputs (issue 9, finding 4): records outside the training data or a declared physiological limit
are flagged in the answer, the CLI table and a batch's table - or refused when the user asks."""

from __future__ import annotations

import pandas as pd
from test_cli import run
from test_service_support import service, wdbc_artifact, wdbc_rows  # noqa: F401


def test_the_service_flags_or_refuses_implausible_records(service, wdbc_rows):
    h = service.headers("clinician")
    huge = dict(wdbc_rows[0], **{"mean radius": 1e6})
    negative = dict(wdbc_rows[1], **{"mean area": -50.0})
    empty = {k: None for k in wdbc_rows[2]}
    body = {"records": [wdbc_rows[0], huge, negative, empty]}
    r = service.http.post("/v1/models/wdbc/predict", json=body, headers=h)
    assert r.status_code == 200, r.text
    normal, big, below, blank = r.json()["predictions"]
    assert normal["outside_training_data"] is False and normal["out_of_range"] == []
    assert big["outside_training_data"] and big["out_of_range"] == ["mean radius above the training range"]
    assert below["out_of_range"] == ["mean area outside its physiological limits"]
    assert blank["out_of_range"] == ["every field missing"]
    r = service.http.post("/v1/models/wdbc/predict?out_of_range=refuse", json=body, headers=h)
    assert r.status_code == 422 and "3 record(s) lie outside" in r.json()["detail"]
    assert "1000000" not in r.text  # fields and reasons are named, never the values
    r = service.http.post("/v1/models/wdbc/predict?out_of_range=refuse", json={"records": wdbc_rows[:2]}, headers=h)
    assert r.status_code == 200


def test_the_cli_table_flags_and_can_refuse(wdbc_artifact, wdbc_rows, tmp_path, capsys):
    frame = pd.DataFrame([wdbc_rows[0], dict(wdbc_rows[1], **{"mean radius": 1e6})])
    frame.to_csv(tmp_path / "in.csv", index=False)
    code, _, err = run(["predict", wdbc_artifact, tmp_path / "in.csv", "-o", tmp_path / "out.csv"], capsys)
    table = pd.read_csv(tmp_path / "out.csv")
    assert code == 0 and table["outside_training_data"].tolist() == [False, True], err
    assert table["out_of_range"].fillna("").tolist() == ["", "mean radius above the training range"]
    code, _, err = run(["predict", wdbc_artifact, tmp_path / "in.csv", "--out-of-range", "refuse"], capsys)
    assert code == 2 and "record 1: mean radius above the training range" in err

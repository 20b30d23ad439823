"""De-identification: detection, the three methods, per-patient consistency, date intervals, tables, DICOM, the
CLI contract and POST /v1/deid (clinician only, input never logged)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

from medai.modalities.text.deid.api import deidentify_table, deidentify_texts
from medai.modalities.text.deid.detect import Detector
from medai.modalities.text.deid.transform import Surrogates, shift_date, zip3

SECRET = b"s" * 32
NOTE = ("Patient John Smith (MRN: 4455667) was seen on 03/14/2021 by Dr. Mary Jones.\n"
        "He is 92 years old and lives at 12 Main St, Springfield, ZIP 03601. Call 555-123-4567 or "
        "john.smith@mail.com.\nFollow-up on 04/20/2021. John was stable.\n")


@pytest.fixture(scope="module")
def patterns_only():
    return Detector(use_spacy=False)


def test_safe_harbor_patterns_find_the_identifiers(patterns_only):
    found = {(f.type, NOTE[f.start:f.end]) for f in patterns_only.analyze([NOTE])[0]}
    for expected in [("MEDICAL_RECORD_NUMBER", "4455667"), ("DATE_TIME", "03/14/2021"), ("AGE", "92"),
                     ("STREET_ADDRESS", "12 Main St"), ("PHONE_NUMBER", "555-123-4567"),
                     ("EMAIL_ADDRESS", "john.smith@mail.com"), ("DATE_TIME", "04/20/2021")]:
        assert expected in found
    more = "VIN 1HGCM82633A004352, serial number SN-99812-X, IP 10.0.0.12, https://clinic.example.com/p/7."
    types = {f.type for f in patterns_only.analyze([more])[0]}
    assert {"VEHICLE_ID", "DEVICE_ID", "IP_ADDRESS", "URL"} <= types


def test_methods_and_report_offsets(patterns_only):
    for method, mark in (("redact", "[REDACTED]"), ("tag", "[DATE_TIME]")):
        (out, report), = deidentify_texts([NOTE], method, detector=patterns_only, secret=SECRET)
        assert "4455667" not in out and "555-123-4567" not in out and mark in out
        for span in report:
            assert set(span) >= {"start", "end", "type", "output_start", "output_end"}
            assert out[span["output_start"]:span["output_end"]] in ("[REDACTED]", f"[{span['type']}]")
            assert "text" not in span  # the report never repeats what it removed


def test_surrogates_are_consistent_within_a_patient_and_keep_date_intervals():
    s = Surrogates(SECRET)
    full, short = s.replace("PERSON", "Vanessa P. Hertzog", "p1"), s.replace("PERSON", "Vanessa", "p1")
    assert full.split()[0] == short and full != "Vanessa P. Hertzog"
    assert s.replace("PERSON", "Vanessa", "p1") == short
    dates = ["03/14/2021", "04/20/2021", "2021-05-01", "June 2, 2021"]
    moved = [s.replace("DATE_TIME", d, "p1") for d in dates]
    parse = [lambda t: datetime.strptime(t, "%m/%d/%Y")] * 2 + [lambda t: datetime.strptime(t, "%Y-%m-%d"),
                                                                lambda t: datetime.strptime(t, "%B %d, %Y")]
    before = [p(d) for p, d in zip(parse, dates, strict=True)]
    after = [p(d) for p, d in zip(parse, moved, strict=True)]
    assert all((b - before[0]) == (a - after[0]) for b, a in zip(before, after, strict=True))
    assert after[0] != before[0]
    assert s.date_offset("p1") != 0 and -365 <= s.date_offset("p2") <= -1
    assert s.replace("AGE", "95", "p") == "90+" and s.replace("AGE", "45", "p") == "45"
    assert zip3("03601") == "00000" and zip3("10001-1234") == "10000"
    assert shift_date("1977", -40) == "1977" and shift_date("15 de marzo de 2016", -3) == "12 de marzo de 2016"


def test_table_columns_dates_shift_per_patient(tmp_path):
    frame = pd.DataFrame({"patient": ["a", "a", "b"], "admitted": ["2020-01-10", "2020-01-20", "2020-01-10"],
                          "age": [95, 40, 91], "zip": ["03601", "10001", "90210"], "name": ["Ann Lee", "Ann Lee",
                                                                                            "Bo Ng"]})
    out, report = deidentify_table(frame, date_columns=["admitted"], age_columns=["age"], zip_columns=["zip"],
                                   id_columns=["name"], patient_column="patient", secret=SECRET)
    a0, a1 = (datetime.strptime(d, "%Y-%m-%d") for d in out["admitted"][:2])
    assert (a1 - a0).days == 10 and out["admitted"][0] != "2020-01-10"
    assert out["age"].tolist() == ["90+", 40, "90+"] and out["zip"].tolist() == ["00000", "10000", "90200"]
    assert out["name"][0] == out["name"][1] != "Ann Lee" and report["age"]["changed"] == 2


def test_deid_text_cli_contract(tmp_path, capsys):
    (tmp_path / "note.txt").write_text(NOTE)
    code, _, err = run(["deid", "text", tmp_path / "note.txt", "-o", tmp_path / "out.txt", "--method", "surrogate",
                        "--report", tmp_path / "report.json", "--no-spacy"], capsys)
    assert code == 0, err
    out = (tmp_path / "out.txt").read_text()
    assert "4455667" not in out and "john.smith@mail.com" not in out and "90+" in out
    report = json.loads((tmp_path / "report.json").read_text())
    spans = report["documents"][0]["spans"]
    assert all(NOTE[s["start"]:s["end"]] and s["type"] for s in spans)
    pd.DataFrame({"pid": ["p1", "p1"], "note": [NOTE, "John Smith came back on 05/01/2021."]}).to_csv(
        tmp_path / "notes.csv", index=False)
    code, _, err = run(["deid", "text", tmp_path / "notes.csv", "-o", tmp_path / "clean.csv", "--text-column", "note",
                        "--patient-column", "pid", "--method", "surrogate", "--no-spacy"], capsys)
    assert code == 0, err
    clean = pd.read_csv(tmp_path / "clean.csv")
    assert "05/01/2021" not in clean["note"][1] and "4455667" not in clean["note"][0]
    code, _, err = run(["deid", "text", tmp_path / "absent.txt", "-o", tmp_path / "x.txt"], capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "x.txt").exists()
    (tmp_path / "latin1.txt").write_bytes(b"Se\xf1or Garc\xeda")
    code, _, err = run(["deid", "text", tmp_path / "latin1.txt", "-o", tmp_path / "y.txt"], capsys)
    assert code == 2 and "not UTF-8" in err and not (tmp_path / "y.txt").exists()


def test_deid_dicom_flags_and_refuses_burned_in(tmp_path, capsys):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    ds.save_as(tmp_path / "burned.dcm")
    code, _, err = run(["deid", "dicom", tmp_path / "burned.dcm", "-o", tmp_path / "out.dcm", "--refuse-burned-in"],
                       capsys)
    assert code == 2 and "burned-in" in err and not (tmp_path / "out.dcm").exists()
    code, _, err = run(["deid", "dicom", tmp_path / "burned.dcm", "-o", tmp_path / "out.dcm", "--report",
                        tmp_path / "r.json"], capsys)
    assert code == 0, err
    clean = pydicom.dcmread(tmp_path / "out.dcm")
    assert str(clean.get("PatientName", "")) != str(ds.PatientName)
    assert json.loads((tmp_path / "r.json").read_text())["files"][0]["burned_in_risk"]


def test_synthetic_corpus_found_phi_is_gone_from_the_output(patterns_only):
    path = require_data("text/presidio_synthetic_pii/synth_dataset_v2.json")
    records = json.loads(path.read_text())[:150]
    texts = [r["full_text"] for r in records]
    found = patterns_only.analyze(texts)
    outputs = deidentify_texts(texts, "surrogate", detector=patterns_only, secret=SECRET)
    checked = 0
    for record, spans, (out, _) in zip(records, found, outputs, strict=True):
        for gold in record["spans"]:
            covered = any(f.start <= gold["start_position"] and gold["end_position"] <= f.end for f in spans)
            value = gold["entity_value"]
            if covered and len(value) >= 4 and gold["entity_type"] != "AGE" and not re.fullmatch(r"\d{4}", value):
                checked += 1
                assert value not in out, (gold["entity_type"], value)
    assert checked > 20


def test_service_deid_is_clinician_only_and_never_logs_the_note(tmp_path):
    from fastapi.testclient import TestClient

    from medai.privacy.audit import AuditLog
    from medai.serving.app import Settings, create_app

    app = create_app(Settings(job_worker=False, rate_limit=100_000, deid_secret=SECRET))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, clinician = app.state.medai.keys.create("c", "clinician")
        _, viewer = app.state.medai.keys.create("v", "viewer")
        body = {"records": [{"text": NOTE, "patient": "p1"}, {"text": "John Smith again on 04/20/2021.",
                                                              "patient": "p1"}], "method": "surrogate"}
        assert http.post("/v1/deid", json=body, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        assert http.post("/v1/deid", json=body).status_code == 401
        answer = http.post("/v1/deid", json=body, headers={"Authorization": f"Bearer {clinician}"})
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["results"]
        assert "4455667" not in first["text"] and first["spans"]
        bad = http.post("/v1/deid", json={"records": [{"text": 5}]}, headers={"Authorization": f"Bearer {clinician}"})
        assert bad.status_code == 422
    rows = json.dumps(list(AuditLog().export()), default=str)
    assert "4455667" not in rows and "John" not in rows and "deid" in rows


def test_resolve_keeps_the_models_boundaries_under_a_covering_pattern():
    from medai.modalities.text.deid.detect import Finding, resolve

    text = "Lives at 28245 Puruntie 82 Apt. 595 now"
    pieces = [(9, 14), (15, 26), (27, 35)]
    model = [Finding(a, b, "STREET_ADDRESS", 1.0, "model") for a, b in pieces]
    covering = Finding(9, 35, "STREET_ADDRESS", 0.7, "pattern")
    assert [(f.start, f.end) for f in resolve([*model, covering], text)] == pieces
    # a pattern reaching past the model's spans still widens them (no identifier left uncovered)
    longer = Finding(9, 39, "STREET_ADDRESS", 0.7, "pattern")
    assert [(f.start, f.end) for f in resolve([*model, longer], text)] == [(9, 39)]
    # findings of one source are still merged
    same = [Finding(9, 20, "STREET_ADDRESS", 0.7, "pattern"), Finding(15, 26, "STREET_ADDRESS", 0.7, "pattern")]
    assert [(f.start, f.end) for f in resolve(same, text)] == [(9, 26)]


def _normalised(text, spans):
    from medai.modalities.text.deid.detect import Finding, normalise

    found = [Finding(text.index(value), text.index(value) + len(value), kind, 1.0, "model") for value, kind in spans]
    return [(text[f.start:f.end], f.type) for f in normalise(sorted(found, key=lambda f: f.start), text)]


def test_normalise_keeps_the_places_and_postal_code_after_a_street_apart():
    """Joining them matched Presidio's synthetic set's convention and broke MEDDOCAN's (street, postal code and
    city are three gold spans there) and the ZIP-3 rule."""
    text = "Send it to 971 Kesk 53\n Suite 343\n Parnu\n Estonia 36903 please"
    spans = [("971 Kesk 53\n Suite 343", "STREET_ADDRESS"), ("Parnu", "LOCATION"), ("Estonia", "LOCATION"),
             ("36903", "ZIP_CODE")]
    assert _normalised(text, spans) == spans
    text = "Domicilio: Calle Mayor 12, 3º B, 28013 Madrid"
    spans = [("Calle Mayor 12, 3º B", "STREET_ADDRESS"), ("28013", "ZIP_CODE"), ("Madrid", "LOCATION")]
    assert _normalised(text, spans) == spans
    text = "12 Main St, Springfield\n\n Estonia"
    assert len(_normalised(text, [("12 Main St, Springfield", "STREET_ADDRESS"), ("Estonia", "LOCATION")])) == 2


def test_normalise_joins_numbers_suites_and_polish_prefixes_and_splits_listed_addresses():
    text = "at 376 Rakoczi ut 13. Suite 104 Veszprem"
    assert _normalised(text, [("376 Rakoczi ut 13", "STREET_ADDRESS"), ("Suite 104 Veszprem", "STREET_ADDRESS")]) \
        == [("376 Rakoczi ut 13. Suite 104 Veszprem", "STREET_ADDRESS")]
    text = "at 17031 2202 Rissik St Apt. 050 Coalville"
    assert _normalised(text, [("17031", "STREET_ADDRESS"), ("2202 Rissik St Apt. 050 Coalville", "STREET_ADDRESS")]) \
        == [("17031 2202 Rissik St Apt. 050 Coalville", "STREET_ADDRESS")]
    # a lone number before a plain street with its own house number stays apart, or is cut off
    text = "at 9816 214 Pavlou Drandaki"
    assert len(_normalised(text, [("9816", "STREET_ADDRESS"), ("214 Pavlou Drandaki", "STREET_ADDRESS")])) == 2
    assert _normalised("at 329 Arenales 9462", [("329 Arenales 9462", "STREET_ADDRESS")]) \
        == [("329", "STREET_ADDRESS"), ("Arenales 9462", "STREET_ADDRESS")]
    assert _normalised("at 580 60 Balsham Road", [("580 60 Balsham Road", "STREET_ADDRESS")]) \
        == [("580", "STREET_ADDRESS"), ("60 Balsham Road", "STREET_ADDRESS")]
    assert _normalised("at 12 Main St", [("12 Main St", "STREET_ADDRESS")]) == [("12 Main St", "STREET_ADDRESS")]
    text = "at 1610 ul. Zakrzowska 92 Apt. 399 and 731 ul. Mila 57"
    assert _normalised(text, [("1610 ul.", "STREET_ADDRESS"), ("Zakrzowska 92 Apt. 399", "PERSON"),
                              ("731", "STREET_ADDRESS"), ("Mila 57", "STREET_ADDRESS")]) \
        == [("1610 ul. Zakrzowska 92 Apt. 399", "STREET_ADDRESS"), ("731 ul. Mila 57", "STREET_ADDRESS")]
    text = "Ship to 257 Thornton St Suite 451, and 7878 Rahu 37 Apt. 405 now"
    assert _normalised(text, [("257 Thornton St Suite 451, and 7878 Rahu 37 Apt. 405", "STREET_ADDRESS")]) \
        == [("257 Thornton St Suite 451", "STREET_ADDRESS"), ("7878 Rahu 37 Apt. 405", "STREET_ADDRESS")]


def test_normalise_names_titles_and_firms():
    text = "Allan Bjork\nScale Unlimited\nsaid Kevin Veitonen II and Margaret S. Stouffer, Giovanna Rodrigues MD"
    spans = [("Allan Bjork\nScale", "PERSON"), ("Kevin Veitonen", "PERSON"), ("Margaret S", "PERSON"),
             ("Giovanna Rodrigues", "PERSON")]
    assert _normalised(text, spans) == [("Allan Bjork", "PERSON"), ("Scale", "PERSON"),
                                        ("Kevin Veitonen II", "PERSON"), ("Margaret S. Stouffer", "PERSON"),
                                        ("Giovanna Rodrigues MD", "PERSON")]
    text = "labor relations director\nrosales-mcguire; the album features Hilding Carlsson"
    assert _normalised(text, [("labor relations director\nrosales-mcguire", "ORGANIZATION"),
                              ("features Hilding Carlsson", "PERSON")]) \
        == [("labor relations director", "ORGANIZATION"), ("rosales-mcguire", "ORGANIZATION"),
            ("Hilding Carlsson", "PERSON")]
    # a name written without capitals keeps its words, and so does one that starts with a particle
    assert _normalised("ask frank freud", [("frank freud", "PERSON")]) == [("frank freud", "PERSON")]
    assert _normalised("ask van de Noort", [("van de Noort", "PERSON")]) == [("van de Noort", "PERSON")]


def test_normalise_runs_in_the_detector():
    text = "Write to 971 Kesk 53\n Suite 343\n Parnu\n Estonia"

    class Model:
        kind = "entities"

        def scores(self, texts):
            return [[{"start": text.index(v), "end": text.index(v) + len(v), "label": t}
                     for v, t in (("971 Kesk 53\n Suite 343", "STREET_ADDRESS"), ("Parnu", "GPE"),
                                  ("Estonia", "GPE"))]]

    found = Detector(model=Model(), use_spacy=False).analyze([text])[0]
    assert [(text[f.start:f.end], f.type) for f in found] == [("971 Kesk 53\n Suite 343", "STREET_ADDRESS"),
                                                              ("Parnu", "LOCATION"), ("Estonia", "LOCATION")]


def test_crf_case_copies_find_names_written_without_capitals():
    from medai.modalities.text.ner import CRFTagger, with_case_copies

    texts, spans = with_case_copies(["Anna Berg lives here.", "no capitals here."], [[(0, 9, "PERSON")], []])
    assert texts == ["Anna Berg lives here.", "no capitals here.", "anna berg lives here."]
    assert spans[2] == [(0, 9, "PERSON")]
    names = ["Anna Berg", "Omar Haddad", "Lena Ruiz", "Ivan Petrov", "Mia Chen", "Paul Novak"]
    train = [f"Yesterday {n} called the clinic about {m}." for n in names for m in ("pain", "a refill", "results")]
    gold = [[(10, 10 + len(n), "PERSON")] for n in names for _ in range(3)]
    test = "yesterday omar haddad called the clinic about results."
    found = CRFTagger(case_copies=True).fit(train, gold).predict([test])[0]
    assert [(s["text"], s["label"]) for s in found] == [("omar haddad", "PERSON")]


def test_crf_case_copies_option_reaches_the_learner_and_is_saved():
    from types import SimpleNamespace

    from medai.modalities.text import TextModality, reading

    modality, target = TextModality(), SimpleNamespace(kind=reading.ENTITY_TARGET)
    options = SimpleNamespace(extra={"crf_case_copies": True}, seed=0, show_progress=False)
    learner = modality.make_learner("crf", target, options, None, None)
    assert learner.case_copies is True
    learner.labels_, learner.model_bytes_ = ["PERSON"], b""
    assert json.loads(modality.save_learner(learner)["text/crf.json"])["params"]["case_copies"] is True
    plain = SimpleNamespace(extra={}, seed=0, show_progress=False)
    assert modality.make_learner("crf", target, plain, None, None).case_copies is False


def test_ensemble_with_a_crf_leaves_none_of_the_found_gold_phi_in_the_output():
    """The detector as the benchmark runs it (a CRF trained with case copies on other records, the Safe Harbor
    patterns, the span normalisation): every gold PHI string that it found is gone from the redacted, tagged
    and surrogate outputs, and it finds most of them."""
    from medai.modalities.text.ner import CRFTagger

    path = require_data("text/presidio_synthetic_pii/synth_dataset_v2.json")
    records = json.loads(path.read_text())
    train, test = records[300:900], records[:120]
    crf = CRFTagger(case_copies=True, max_iterations=60).fit(
        [r["full_text"] for r in train],
        [[(s["start_position"], s["end_position"], s["entity_type"]) for s in r["spans"]] for r in train])
    class Model:  # what medai.road's loaded entity model offers the detector
        kind = "entities"

        def scores(self, texts):
            return crf.predict(texts)

    detector = Detector(model=Model(), use_spacy=False)
    texts = [r["full_text"] for r in test]
    found = detector.analyze(texts)
    checked = total = 0
    for method in ("redact", "tag", "surrogate"):
        outputs = deidentify_texts(texts, method, detector=detector, secret=SECRET)
        for record, spans, (out, _) in zip(test, found, outputs, strict=True):
            for gold in record["spans"]:
                total += 1
                covered = any(f.start <= gold["start_position"] and gold["end_position"] <= f.end for f in spans)
                value = gold["entity_value"]
                # ages and bare years are kept by surrogates (only ages over 89 and dates below the year go)
                if covered and len(value) >= 4 and not (method == "surrogate" and (
                        gold["entity_type"] == "AGE" or re.fullmatch(r"\d{4}", value))):
                    checked += 1
                    assert value not in out, (method, gold["entity_type"], value)
    assert checked > 0.7 * total

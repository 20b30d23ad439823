"""What a new user met on data the project had never seen (issue "one road", 4b), each on a file of that shape."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from test_cli import run

from medai.modalities import Modality, register_modality, unregister_modality


def clintox_like(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """ClinTox's layout: a SMILES column and two outcome columns, FDA approval nearly the opposite of toxicity."""
    rng = np.random.default_rng(seed)
    toxic = rng.random(n) < 0.1
    approved = np.where(rng.random(n) < 0.9, ~toxic, toxic)
    atoms = ["C", "N", "O", "c1ccccc1", "Cl", "C(=O)O", "CC"]
    smiles = ["".join(rng.choice(atoms, rng.integers(3, 9))) + f"C{i}" for i in range(n)]
    return pd.DataFrame({"smiles": smiles, "FDA_APPROVED": approved.astype(int), "CT_TOX": toxic.astype(int)})


def test_a_dropped_column_is_said_and_an_outcome_column_raises_the_leakage_sentinel(tmp_path, capsys):
    clintox_like().to_csv(tmp_path / "clintox.csv", index=False)
    # named: a SMILES column alone makes the molecules modality claim the file (tests/test_molecules_cli.py)
    code, stdout, err = run(["train", "--data", tmp_path / "clintox.csv", "--target", "CT_TOX", "--learner", "logistic",
                             "--modality", "tabular", "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "Column 'smiles' was not used: free text or identifier" in err
    assert "possible leakage: column 'FDA_APPROVED' looks like another outcome" in err
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    assert any("FDA_APPROVED" in w for w in metrics["warnings"])
    assert "possible leakage" in (tmp_path / "m/report.html").read_text()
    assert "possible leakage" in (tmp_path / "m/card.md").read_text()


def test_a_feature_that_is_the_target_in_disguise_is_flagged(tmp_path, capsys):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.integers(30, 80, 300), "bp": rng.normal(130, 15, 300)})
    frame["grade"] = rng.integers(0, 4, 300)  # a finer code of the outcome, recorded afterwards
    frame["disease"] = np.where(frame["grade"] > 0, "yes", "no")
    frame.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "d.csv", "--target", "disease", "--learner", "logistic",
                        "--out", tmp_path / "m"], capsys)
    assert code == 0 and "column 'grade' on its own predicts the target almost perfectly" in err, err
    assert "'age'" not in err.split("possible leakage")[-1]


def test_no_false_alarm_on_genuinely_strong_features(tmp_path, capsys):
    code, _, err = run(["train", "breast-cancer-wdbc", "--cv", "none", "--out", tmp_path / "m"], capsys)
    assert code == 0 and "leakage" not in err, err


def test_a_column_another_modality_reads_is_pointed_to_it(tmp_path, capsys):
    class Strings(Modality):
        name = "strings"
        reads = "SMILES strings"

        def records_column(self, series):
            return "SMILES strings" if series.astype(str).str.fullmatch(r"[A-Za-z0-9()=#\[\]@+\-]+").all() else None

    register_modality(Strings())
    try:
        clintox_like().to_csv(tmp_path / "c.csv", index=False)
        code, _, err = run(["train", "--data", tmp_path / "c.csv", "--target", "CT_TOX", "--learner", "logistic",
                            "--out", tmp_path / "m", "--modality", "tabular"], capsys)
    finally:
        unregister_modality("strings")
    assert code == 0, err
    assert "it holds SMILES strings: the strings modality reads them (--modality strings)" in err


def test_uci_style_one_two_coding_asks_which_is_positive(tmp_path, capsys):
    """ILPD codes liver patients 1, others 2: the old guess (2) was the wrong way round."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"Age": rng.integers(20, 80, 200), "TB": rng.gamma(2, 1, 200)})
    frame["Selector"] = np.where(frame["TB"] + rng.normal(0, 1, 200) > 2, 1, 2)
    frame.to_csv(tmp_path / "ilpd.csv", index=False)
    base = ["train", "--data", tmp_path / "ilpd.csv", "--target", "Selector", "--learner", "logistic"]
    code, _, err = run([*base, "--out", tmp_path / "x"], capsys)
    assert code == 2 and "--positive-label" in err and not (tmp_path / "x").exists()
    code, _, err = run([*base, "--positive-label", "1", "--out", tmp_path / "m"], capsys)
    assert code == 0 and "positive class named with --positive-label" in err
    assert json.loads((tmp_path / "m/model.json").read_text())["target"]["positive_label"] == "1"
    assert "positive class <b>1</b>" in (tmp_path / "m/report.html").read_text()


def test_arff_excel_and_stata_tables_train_end_to_end(tmp_path, capsys):
    import pyreadstat

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"age": rng.integers(20, 80, 150).astype(float), "sc": rng.gamma(2, 1, 150)})
    frame["ckd"] = np.where(frame["sc"] + rng.normal(0, 1, 150) > 2.2, "ckd", "notckd")
    lines = ["@relation kidney", "@attribute age numeric", "@attribute sc numeric",
             "@attribute class {ckd,notckd}", "@data"]
    lines += [f"{a:.0f},{s:.3f},{c}" for a, s, c in frame.itertuples(index=False)]
    (tmp_path / "kidney.arff").write_text("\n".join(lines) + "\n")
    frame.to_excel(tmp_path / "kidney.xlsx", index=False)
    coded = frame.assign(ckd=np.where(frame["ckd"] == "ckd", 1.0, 0.0))
    pyreadstat.write_dta(coded, str(tmp_path / "kidney.dta"),
                         variable_value_labels={"ckd": {1.0: "ckd", 0.0: "notckd"}})
    for name, target in (("kidney.arff", "class"), ("kidney.xlsx", "ckd"), ("kidney.dta", "ckd")):
        code, stdout, err = run(["train", "--data", tmp_path / name, "--target", target, "--positive-label", "ckd",
                                 "--learner", "logistic", "--out", tmp_path / name.replace(".", "_"), "--json"], capsys)
        assert code == 0, (name, err)
        assert json.loads(stdout)["test"]["auroc"]["value"] > 0.6, name

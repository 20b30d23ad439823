"""The molecules modality's chemistry: parsing with RDKit's reason, standardisation, duplicates, splits,
features, the applicability domain's fingerprints, and finding the SMILES column."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdkit")

from medai.modalities.molecules import chem, splits  # noqa: E402
from medai.modalities.molecules.features import Featurizer  # noqa: E402
from medai.modalities.molecules.reading import find_smiles_column, looks_like_smiles, merge_duplicates  # noqa: E402

DRUGS = ["CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
         "CN1CCC[C@H]1c1cccnc1", "OC(=O)c1ccccc1O", "c1ccc2c(c1)cccn2", "CCN(CC)CC", "CCO"]


def test_invalid_smiles_carry_rdkits_reason():
    assert chem.parse("C1CC") == (None, "SMILES Parse Error: unclosed ring")
    assert "valence" in chem.parse("CC(C)(C)(C)C")[1].lower()
    assert "kekulize" in chem.parse("c1cccc1")[1].lower()
    assert chem.parse("")[1] == "empty SMILES" and chem.parse(None)[1] == "empty SMILES"
    assert chem.parse("CCO")[0] is not None


def test_standardisation_strips_salts_neutralises_and_can_pick_the_tautomer():
    out, reasons = chem.standardise_all(["[Na+].CC(=O)[O-]", "CC[NH3+].[Cl-]", "OC(C)=CC", "C1CC"],
                                        chem.Standardiser())
    assert out[:3] == ["CC(=O)O", "CCN", "CC=C(C)O"] and out[3] is None and "unclosed ring" in reasons[3]
    tautomer, _ = chem.standardise_all(["OC(C)=CC"], chem.Standardiser(tautomer=True))
    assert tautomer == ["CCC(C)=O"]


def test_duplicates_after_standardisation_are_merged():
    frame = pd.DataFrame({"_smiles": ["CCO", "CCO", "CCN", "CCN", "CCC"], "y": [1, 1, 0, 1, 0],
                          "v": [1.0, 3.0, 2.0, 2.0, 5.0]})
    merged, notes = merge_duplicates(frame, ["y"], regression=False)
    assert len(merged) == 3 and merged.set_index("_smiles")["y"].isna().tolist() == [False, True, False]
    assert "conflicting" in notes[0]
    merged, _ = merge_duplicates(frame, ["v"], regression=True)
    assert merged.set_index("_smiles").loc["CCO", "v"] == 2.0


def test_deterministic_scaffold_split_follows_deepchem():
    # scaffolds: benzene x5, pyridine x3, cyclohexane x1, acyclic x1 -> benzene+pyridine fill train (8 of 10)
    smiles = ["Cc1ccccc1", "CCc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Clc1ccccc1", "Cc1ccncc1", "CCc1ccncc1",
              "Oc1ccncc1", "CC1CCCCC1", "CCCC"]
    parts = splits.deterministic_scaffold_split(smiles)
    assert parts["train"].tolist() == list(range(8))
    assert len(parts["val"]) == 1 and len(parts["test"]) == 1
    assert splits.make_split("scaffold", smiles, 0)[0]["test"].tolist() == splits.make_split(
        "scaffold", smiles, 7)[0]["test"].tolist()
    scaffolds = [chem.scaffold(s) for s in smiles]
    assert not {scaffolds[i] for i in parts["train"]} & {scaffolds[i] for i in parts["test"]}


def test_balanced_scaffold_and_random_splits_depend_on_the_seed_and_keep_scaffolds_apart():
    rng = np.random.default_rng(0)
    rings = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccsc1", "C1CCNCC1", "c1ccoc1", "C1CCOC1", "c1cnccn1"]
    smiles = [f"{'C' * int(rng.integers(1, 6))}{rings[i % len(rings)]}" for i in range(80)]
    a, b = splits.balanced_scaffold_split(smiles, 0), splits.balanced_scaffold_split(smiles, 1)
    assert sum(len(v) for v in a.values()) == 80
    for parts in (a, b):
        train = {chem.scaffold(smiles[i]) for i in parts["train"]}
        assert not train & {chem.scaffold(smiles[i]) for i in parts["test"]}
    r0, r1 = splits.random_split(100, 0), splits.random_split(100, 1)
    assert [len(r0[k]) for k in ("train", "val", "test")] == [80, 10, 10] and r0["test"].tolist() != r1["test"].tolist()


def test_split_column_names_are_read_and_bad_values_refused():
    parts = splits.column_split(pd.Series(["train", "Valid", "TEST", "train"]), "fold", "f.csv")
    assert parts["train"].tolist() == [0, 3] and parts["val"].tolist() == [1] and parts["test"].tolist() == [2]
    with pytest.raises(Exception, match="row 2 holds 'x'"):
        splits.column_split(pd.Series(["train", "x"]), "fold", "f.csv")


def test_features_are_counts_descriptors_and_maccs():
    featurizer = Featurizer(("morgan", "rdkit2d", "maccs"), 2, 1024)
    F = featurizer.transform(DRUGS)
    names = featurizer.names()
    assert F.shape == (len(DRUGS), len(names)) and F.dtype == np.float32
    assert F[:, :1024].max() >= 2  # counts, not bits
    logp = names.index("MolLogP")
    assert F[DRUGS.index("CCO"), logp] < F[DRUGS.index("CC(C)Cc1ccc(cc1)C(C)C(=O)O"), logp]
    assert set(np.unique(F[:, -167:])) <= {0.0, 1.0}
    assert np.array_equal(featurizer.transform(DRUGS[:2]), F[:2])  # cached rows are the same rows


def test_domain_fingerprints_round_trip_and_similarity():
    packed = chem.pack(chem.fingerprints(DRUGS))
    assert packed.dtype == np.uint8 and packed.shape == (len(DRUGS), 256)
    nearest = chem.nearest_similarity(chem.fingerprints(["CC(=O)Oc1ccccc1C(=O)O", "FC(F)(F)C(F)(F)F"]),
                                      chem.unpack(packed))
    assert nearest[0] == pytest.approx(1.0) and nearest[1] < 0.2


def test_the_smiles_column_is_found_by_name_or_by_content():
    frame = pd.DataFrame({"compound": DRUGS, "notes": ["a note"] * 8, "y": range(8)})
    assert find_smiles_column(frame, None, "f") == "compound"
    assert not looks_like_smiles(pd.Series(["aspirin", "caffeine", "ibuprofen", "nicotine"]))
    assert not looks_like_smiles(pd.Series(["1.5", "2", "3"]))
    with pytest.raises(Exception, match="--smiles-column 'nope' is not in f"):
        find_smiles_column(frame, "nope", "f")


def test_the_package_imports_without_rdkit_chemprop_or_torch():
    code = ("import sys\nfor m in ('rdkit', 'chemprop', 'lightning'):\n    sys.modules[m] = None\n"
            "from medai.modalities import get_modality\nm = get_modality('molecules')\n"
            "from medai.tasks import get_task\nassert get_task('bbbp').modality == 'molecules'\n"
            "assert 'torch' not in sys.modules\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_patient_table_with_a_drug_name_column_is_not_claimed(tmp_path):
    from medai.modalities import get_modality, modality_for_data
    from medai.road import TrainOptions

    frame = pd.DataFrame({"age": range(40), "drug": ["Ibuprofen", "aspirin", "Caffeine", "Nicotine"] * 10,
                          "outcome": [0, 1] * 20})
    frame.to_csv(tmp_path / "patients.csv", index=False)
    assert get_modality("molecules").claims(tmp_path / "patients.csv", TrainOptions()) == 0
    assert modality_for_data(tmp_path / "patients.csv", TrainOptions()).name == "tabular"

"""The scaffold split reproduces DeepChem's ScaffoldSplitter index for index, on the records as written in the file.

The expected indices below were worked out by hand from DeepChem's ``ScaffoldSplitter`` (deepchem/splits/
splitters.py: ``generate_scaffolds`` groups records by ``MurckoScaffoldSmiles(mol, includeChirality=False)``
of ``dataset.ids``, sorts the groups by ``(len, first index)`` descending, and ``split`` puts a group into train
while train stays within 0.8 n, else into validation while train + validation stay within 0.9 n, else into test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdkit")

from medai.modalities.molecules import splits  # noqa: E402
from medai.modalities.molecules.reading import build_dataset  # noqa: E402
from medai.road import TrainOptions  # noqa: E402

# 20 records: benzene x7 (first at 1), pyridine x4 (first at 3), cyclohexane x3 (first at 2), acyclic x3 (first
# at 0), naphthalene x2 (first at 8), thiophene x1 (at 5)
FIXTURE = ["CCO", "Cc1ccccc1", "CC1CCCCC1", "Cc1cccnc1", "Oc1ccccc1", "Cc1ccsc1", "Nc1ccccc1", "CCCN",
           "Cc1cccc2ccccc12", "Oc1cccnc1", "CCc1ccccc1", "OC1CCCCC1", "Clc1ccccc1", "Nc1cccnc1", "Oc1cccc2ccccc12",
           "Fc1ccccc1", "CC(=O)O", "NC1CCCCC1", "CCc1cccnc1", "Brc1ccccc1"]
BENZENE, PYRIDINE, CYCLOHEXANE = [1, 4, 6, 10, 12, 15, 19], [3, 9, 13, 18], [2, 11, 17]
ACYCLIC, NAPHTHALENE, THIOPHENE = [0, 7, 16], [8, 14], [5]


def test_scaffold_split_reproduces_deepchems_indices():
    # cutoffs 16 and 18. benzene 7 -> train (7), pyridine 4 -> train (11); cyclohexane and acyclic tie at 3 and
    # cyclohexane comes first (its first index, 2, is the larger) -> train (14); acyclic would make 17 > 16 ->
    # validation (3); naphthalene 14 + 2 = 16 -> train; thiophene 17 > 16 and 16 + 3 + 1 > 18 -> test
    parts = splits.deterministic_scaffold_split(FIXTURE)
    assert parts["train"].tolist() == sorted(BENZENE + PYRIDINE + CYCLOHEXANE + NAPHTHALENE)
    assert parts["val"].tolist() == ACYCLIC
    assert parts["test"].tolist() == THIOPHENE


def test_scaffolds_are_of_the_smiles_as_written_before_standardisation_and_merging():
    # two pyridines written protonated: as written their scaffold is pyridinium, a group of its own (DeepChem
    # sees the file's SMILES); standardisation would neutralise them into the pyridine group
    smiles = list(FIXTURE)
    smiles[13], smiles[18] = "Nc1ccc[nH+]c1", "CCc1ccc[nH+]c1"
    frame = pd.DataFrame({"smiles": smiles, "y": [i % 2 for i in range(20)]})
    dataset = build_dataset(frame, TrainOptions(seed=0, extra={"split": "scaffold"}), source="f.csv",
                            smiles_column=None, targets=["y"])
    # groups: benzene 7, cyclohexane 3 (first 2), acyclic 3 (first 0), pyridinium 2 (first 13), naphthalene 2
    # (first 8), pyridine 2 (first 3), thiophene 1: train 7, 10, 13, 15; naphthalene 17 > 16 -> validation;
    # pyridine 17 > 16 and 19 > 18 -> test; thiophene 16 -> train
    parts = dataset.official_split
    assert parts["train"].tolist() == sorted(BENZENE + CYCLOHEXANE + ACYCLIC + [13, 18] + THIOPHENE)
    assert parts["val"].tolist() == NAPHTHALENE
    assert parts["test"].tolist() == [3, 9]
    assert dataset.X[13] == "Nc1cccnc1"  # the model still sees the standardised molecule


def test_random_split_is_a_seeded_generator_permutation_cut_at_80_and_90_percent():
    order = np.random.default_rng(3).permutation(23)
    parts = splits.random_split(23, 3)
    assert parts["train"].tolist() == sorted(order[:18]) and parts["val"].tolist() == sorted(order[18:20])
    assert parts["test"].tolist() == sorted(order[20:])


def test_duplicates_are_split_as_records_then_merged_into_the_part_of_their_first_record():
    frame = pd.DataFrame({"smiles": ["CCO", "c1ccccc1O", "OCC", "CCN", "CCCl", "CCBr"],
                          "fold": ["train", "train", "test", "val", "test", "train"], "y": [1, 0, 1, 0, 1, 0]})
    options = TrainOptions(seed=0, extra={"split_column": "fold"})
    dataset = build_dataset(frame, options, source="f.csv", smiles_column=None, targets=["y"])
    assert dataset.X.tolist() == ["CCO", "Oc1ccccc1", "CCN", "CCCl", "CCBr"]
    assert dataset.official_split["train"].tolist() == [0, 1, 4] and dataset.official_split["test"].tolist() == [3]
    assert any("1 molecule(s) have records in more than one of train/validation/test: each merged into the part "
               "of its first record" in note for note in dataset.notes)
    kept = build_dataset(frame, TrainOptions(seed=0, extra={"split_column": "fold", "duplicates": "keep"}),
                         source="f.csv", smiles_column=None, targets=["y"])
    assert len(kept.X) == 6 and kept.official_split["test"].tolist() == [2, 4]
    assert any("(kept in each: --duplicates keep)" in note for note in kept.notes)


def test_featurisers_share_each_kind_of_feature_and_agree_with_a_fresh_computation():
    from medai.modalities.molecules import features
    from medai.modalities.molecules.chem import mols

    smiles = FIXTURE[:6]
    both = features.Featurizer(("morgan", "rdkit2d"), 2, 512).transform(smiles)
    maccs_first = features.Featurizer(("maccs", "morgan"), 2, 512).transform(smiles[::-1])[::-1]
    assert np.array_equal(maccs_first[:, 167:], both[:, :512])  # the Morgan block, whatever the order of kinds
    assert np.array_equal(maccs_first[:, :167], features.maccs(mols(smiles)))
    fresh = features.rdkit_descriptors(mols(smiles)).astype(np.float32)
    assert np.array_equal(both[:, 512:], fresh, equal_nan=True)
    other_radius = features.Featurizer(("morgan",), 1, 512).transform(smiles)
    assert not np.array_equal(other_radius, both[:, :512])  # a different radius is a different block


def test_bace_splits_as_deepchem_splits_it():
    # DeepChem's ScaffoldSplitter on the 1,513 BACE records: 1,210 / 151 / 152, the test set 92 actives; one
    # molecule appears twice after standardisation and is merged into train (its first record's part)
    from conftest import require_data

    frame = pd.read_csv(require_data("molecules/moleculenet_chemprop/bace.csv"))
    dataset = build_dataset(frame, TrainOptions(seed=0, extra={}), source="bace", smiles_column="mol",
                            targets=["Class"], split="scaffold")
    sizes = {name: len(idx) for name, idx in dataset.official_split.items()}
    assert sizes == {"train": 1209, "val": 151, "test": 152}
    y = dataset.y.to_numpy()
    assert int(y[dataset.official_split["test"]].sum()) == 92 and int(y[dataset.official_split["val"]].sum()) == 84

"""Splits of molecules into train/validation/test (80/10/10 as MoleculeNet), computed by the modality and
handed to the road as ``Dataset.official_split`` with ``Dataset.split_protocol`` saying how.

The splits work on the file's records in file order and on their SMILES as written (what DeepChem's splitters
see as ``dataset.ids``), before duplicates are merged: a MoleculeNet file then splits exactly as DeepChem
splits it.

- ``random``: a seeded permutation (``np.random.default_rng(seed)``) cut at ``round(0.8 n)`` and ``round(0.9 n)``
  records (not DeepChem's ``RandomSplitter`` permutation, which uses NumPy's legacy global generator).
- ``scaffold``: deterministic Bemis-Murcko scaffold split, DeepChem's ``ScaffoldSplitter`` logic: scaffolds
  without chirality, scaffold sets sorted by (size, first index) descending - the largest first, and of equal
  sizes the set whose first member comes later first - the sets filling train while train stays within 0.8 n,
  then validation within 0.9 n, then test. The seed does not change it.
- ``balanced-scaffold``: chemprop's balanced scaffold split: sets bigger than half the validation or test size go
  to train first, the rest are shuffled by the seed.
- ``column``: a column of the user's file saying ``train``/``val``/``test`` per molecule.
"""

from __future__ import annotations

import random as _random
from collections import defaultdict

import numpy as np
import pandas as pd

from medai.errors import MedAIError

SPLITS = ("scaffold", "random", "balanced-scaffold")
FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test", "holdout": "test"}


def scaffold_sets(smiles: list[str]) -> dict[str, list[int]]:
    from medai.modalities.molecules.chem import scaffold

    sets: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        sets[scaffold(s)].append(i)
    return dict(sets)


def random_split(n: int, seed: int, fractions=FRACTIONS) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def deterministic_scaffold_split(smiles: list[str], fractions=FRACTIONS) -> dict[str, np.ndarray]:
    sets = sorted(scaffold_sets(smiles).values(), key=lambda s: (len(s), s[0]), reverse=True)
    n = len(smiles)
    train_cutoff, val_cutoff = fractions[0] * n, (fractions[0] + fractions[1]) * n
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for members in sets:
        if len(train) + len(members) > train_cutoff:
            if len(train) + len(val) + len(members) > val_cutoff:
                test += members
            else:
                val += members
        else:
            train += members
    return {"train": np.array(sorted(train), dtype=int), "val": np.array(sorted(val), dtype=int),
            "test": np.array(sorted(test), dtype=int)}


def balanced_scaffold_split(smiles: list[str], seed: int, fractions=FRACTIONS) -> dict[str, np.ndarray]:
    n = len(smiles)
    train_size, val_size, test_size = fractions[0] * n, fractions[1] * n, fractions[2] * n
    big, small = [], []
    for members in scaffold_sets(smiles).values():
        (big if len(members) > val_size / 2 or len(members) > test_size / 2 else small).append(members)
    rng = _random.Random(seed)
    rng.shuffle(big)
    rng.shuffle(small)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for members in big + small:
        if len(train) + len(members) <= train_size:
            train += members
        elif len(val) + len(members) <= val_size:
            val += members
        else:
            test += members
    return {"train": np.array(sorted(train), dtype=int), "val": np.array(sorted(val), dtype=int),
            "test": np.array(sorted(test), dtype=int)}


def column_split(values: pd.Series, column: str, source: str) -> dict[str, np.ndarray]:
    names = values.map(lambda v: SPLIT_NAMES.get(str(v).strip().lower()) if pd.notna(v) else None)
    bad = np.flatnonzero(names.isna().to_numpy())
    if bad.size:
        raise MedAIError(f"{source}: split column {column!r} must say train, val or test; row {bad[0] + 1} holds "
                         f"{values.iloc[bad[0]]!r}")
    return {name: np.flatnonzero((names == name).to_numpy()) for name in ("train", "val", "test")}


def make_split(kind: str, smiles: list[str], seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Positions per split and the sentence the report states."""
    if kind == "random":
        return random_split(len(smiles), seed), f"random split 80/10/10 train/validation/test (seed {seed})"
    if kind == "scaffold":
        return deterministic_scaffold_split(smiles), (
            "deterministic Bemis-Murcko scaffold split 80/10/10 (DeepChem ScaffoldSplitter: largest scaffold sets "
            "to train; the same for every seed)")
    if kind == "balanced-scaffold":
        return balanced_scaffold_split(smiles, seed), (
            f"balanced Bemis-Murcko scaffold split 80/10/10 (chemprop's: large scaffold sets to train, the rest "
            f"shuffled with seed {seed})")
    raise MedAIError(f"--split must be one of {', '.join(SPLITS)} (or give --split-column), got {kind!r}")


def check_split(parts: dict[str, np.ndarray], protocol: str) -> None:
    empty = [name for name in ("train", "val", "test") if len(parts[name]) == 0]
    if empty:
        raise MedAIError(f"the {protocol.split(' (')[0]} leaves no molecules in {', '.join(empty)}; "
                         "more molecules are needed (or another --split)")

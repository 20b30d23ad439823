"""Molecular features: Morgan (ECFP) counts, RDKit 2D descriptors and MACCS keys, as one numeric matrix.

Features of a SMILES are computed once per process and kind (a bounded cache): validation, test, the report,
the applicability domain and every learner that uses a kind share its values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medai.errors import MedAIError

KINDS = ("morgan", "rdkit2d", "maccs")
CLIP = 1e12  # a few RDKit descriptors (Ipc) reach 1e40: beyond float32, and meaningless beyond this
_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_LIMIT = 180_000  # entries: (kind, molecule) blocks - about 60,000 molecules with all three kinds


def parse_kinds(text: str | tuple | list) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in (text.split(",") if isinstance(text, str) else text) if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise MedAIError(f"--features must be a comma-separated choice of {', '.join(KINDS)}, got {text!r}")
    return kinds


@dataclass(frozen=True)
class Featurizer:
    kinds: tuple[str, ...] = KINDS
    radius: int = 2
    n_bits: int = 2048

    def __post_init__(self) -> None:
        if not 0 <= int(self.radius) <= 6:
            raise MedAIError(f"--radius must be between 0 and 6, got {self.radius}")
        if not 64 <= int(self.n_bits) <= 16384:
            raise MedAIError(f"--n-bits must be between 64 and 16384, got {self.n_bits}")

    def names(self) -> list[str]:
        out: list[str] = []
        for kind in self.kinds:
            if kind == "morgan":
                out += [f"ecfp{2 * self.radius}_{i}" for i in range(self.n_bits)]
            elif kind == "rdkit2d":
                out += [name for name, _ in descriptor_functions()]
            else:
                out += [f"maccs_{i}" for i in range(167)]
        return out

    @staticmethod
    def descriptor_names() -> list[str]:
        return [name for name, _ in descriptor_functions()]

    def transform(self, smiles) -> np.ndarray:
        """``(n, n_features)`` float32 (NaN where a descriptor is undefined)."""
        smiles = [str(s) for s in smiles]
        if not smiles:
            return np.zeros((0, len(self.names())), dtype=np.float32)
        return np.hstack([self._block(kind, smiles) for kind in self.kinds])

    def _block(self, kind: str, smiles: list[str]) -> np.ndarray:
        """One kind of feature, cached per molecule: featurisers that share a kind share its values."""
        from medai.modalities.molecules.chem import mols

        key = (kind, self.radius, self.n_bits) if kind == "morgan" else (kind,)
        missing = [s for s in dict.fromkeys(smiles) if (key, s) not in _CACHE]
        if missing:
            rows = self._compute(kind, mols(missing))
            if len(_CACHE) + len(missing) > _CACHE_LIMIT:
                _CACHE.clear()
            for s, row in zip(missing, rows, strict=True):
                _CACHE[(key, s)] = row
            if any((key, s) not in _CACHE for s in smiles):  # more molecules than the cache holds at once
                return self._compute(kind, mols(smiles))
        return np.stack([_CACHE[(key, s)] for s in smiles])

    def _compute(self, kind: str, molecules: list) -> np.ndarray:
        if kind == "morgan":
            block = morgan_counts(molecules, self.radius, self.n_bits)
        elif kind == "rdkit2d":
            block = rdkit_descriptors(molecules)
        else:
            block = maccs(molecules)
        return block.astype(np.float32)

    def to_json(self) -> dict:
        return {"kinds": list(self.kinds), "radius": int(self.radius), "n_bits": int(self.n_bits)}


def morgan_counts(molecules, radius: int, n_bits: int) -> np.ndarray:
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return np.array([generator.GetCountFingerprintAsNumPy(m) for m in molecules], dtype=np.float32).reshape(
        len(molecules), n_bits)


def morgan_bit_atoms(mol, radius: int, n_bits: int) -> dict[int, list[tuple[int, int]]]:
    """For each Morgan bit set in ``mol``: its (centre atom, radius) environments."""
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    info = rdFingerprintGenerator.AdditionalOutput()
    info.AllocateBitInfoMap()
    generator.GetCountFingerprint(mol, additionalOutput=info)
    return {int(bit): [(int(a), int(r)) for a, r in envs] for bit, envs in info.GetBitInfoMap().items()}


SKIPPED_DESCRIPTORS = ("Ipc",)  # a pure-Python characteristic polynomial: slow, and its values reach 1e40


def descriptor_functions() -> list:
    from rdkit.Chem import Descriptors

    return [(name, f) for name, f in Descriptors._descList if name not in SKIPPED_DESCRIPTORS]


def rdkit_descriptors(molecules) -> np.ndarray:
    functions = descriptor_functions()
    out = np.full((len(molecules), len(functions)), np.nan)
    for i, mol in enumerate(molecules):
        for j, (_, function) in enumerate(functions):
            try:
                out[i, j] = function(mol)
            except Exception:  # a descriptor undefined for this molecule stays NaN
                continue
    out[~np.isfinite(out)] = np.nan
    return np.clip(out, -CLIP, CLIP)


def maccs(molecules) -> np.ndarray:
    from rdkit import DataStructs
    from rdkit.Chem import MACCSkeys

    out = np.zeros((len(molecules), 167), dtype=np.float32)
    for i, mol in enumerate(molecules):
        DataStructs.ConvertToNumpyArray(MACCSkeys.GenMACCSKeys(mol), out[i])
    return out

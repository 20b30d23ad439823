"""Chemistry with RDKit: parsing with the reason a SMILES is refused, standardisation (rdMolStandardize),
Bemis-Murcko scaffolds, Morgan bit fingerprints and nearest-neighbour Tanimoto similarity.

RDKit is imported inside the functions: the package imports without it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

import numpy as np

from medai.errors import MedAIError

SMILES_PATTERN = re.compile(r"^[A-Za-z0-9@+\-\[\]\(\)=#$%/\\.:*~]+$")
DOMAIN_RADIUS, DOMAIN_BITS = 2, 2048  # ECFP4 bits for the applicability domain


_quiet = False


def require_rdkit():
    try:
        from rdkit import Chem  # noqa: F401
    except ImportError:
        raise MedAIError("the molecules modality needs RDKit: pip install 'medai[molecules]'") from None
    quiet_rdkit()


def quiet_rdkit() -> None:
    """RDKit's messages go to the Python logger ``rdkit``, which keeps them (nothing printed) unless captured."""
    global _quiet
    if _quiet:
        return
    from rdkit import rdBase

    rdBase.LogToPythonLogger()
    logger = logging.getLogger("rdkit")
    logger.handlers = [logging.NullHandler()]  # RDKit adds its own stderr handler: replaced
    logger.propagate = False
    _quiet = True


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def rdkit_messages():
    """Collect what RDKit says (parse errors, valence problems) instead of letting it print."""
    quiet_rdkit()
    logger = logging.getLogger("rdkit")
    handler = _Capture()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _reason(messages: list[str]) -> str:
    lines = [re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", m).strip() for m in messages]
    lines = [line for line in lines if line and not line.startswith("^") and "check for mistakes" not in line]
    for line in lines:
        if "Parse Error" in line or "valence" in line.lower() or "kekulize" in line.lower():
            return line.split(" for input:")[0]
    return lines[0] if lines else "RDKit could not parse it"


def parse(smiles) -> tuple[object | None, str]:
    """An RDKit molecule and ``""``, or ``None`` and RDKit's reason."""
    from rdkit import Chem

    if smiles is None or (isinstance(smiles, float) and np.isnan(smiles)):
        return None, "empty SMILES"
    text = str(smiles).strip()
    if not text:
        return None, "empty SMILES"
    with rdkit_messages() as messages:
        mol = Chem.MolFromSmiles(text)
    if mol is None:
        return None, _reason(messages)
    if mol.GetNumAtoms() == 0:
        return None, "SMILES without atoms"
    return mol, ""


@dataclass(frozen=True)
class Standardiser:
    """rdMolStandardize: clean-up (normalise functional groups, reionise), the largest organic fragment (strips
    salts and solvents), neutralisation, and optionally the canonical tautomer."""

    fragment: bool = True
    neutralise: bool = True
    tautomer: bool = False

    def __call__(self, mol):
        from rdkit import Chem
        from rdkit.Chem.MolStandardize import rdMolStandardize as std

        with rdkit_messages():
            mol = std.Cleanup(mol)
            if self.fragment:
                mol = std.LargestFragmentChooser(preferOrganic=True).choose(mol)
            if self.neutralise:
                mol = std.Uncharger().uncharge(mol)
            if self.tautomer:
                enumerator = std.TautomerEnumerator()
                enumerator.SetMaxTautomers(200)
                mol = enumerator.Canonicalize(mol)
            Chem.SanitizeMol(mol)
        return mol

    def describe(self) -> str:
        steps = ["clean-up"]
        steps += ["largest organic fragment (salts and solvents stripped)"] if self.fragment else []
        steps += ["neutralised"] if self.neutralise else []
        steps += ["canonical tautomer"] if self.tautomer else []
        return "RDKit rdMolStandardize: " + ", ".join(steps)

    def to_json(self) -> dict:
        return {"fragment": self.fragment, "neutralise": self.neutralise, "tautomer": self.tautomer}


def standardise_all(values, standardiser: Standardiser) -> tuple[list[str | None], list[str]]:
    """Standardised canonical SMILES per value (``None`` where refused) and the reason for each refusal."""
    from rdkit import Chem

    out, reasons = [], []
    for value in values:
        mol, reason = parse(value)
        if mol is not None:
            try:
                mol = standardiser(mol)
                smiles = Chem.MolToSmiles(mol)
                if not smiles:
                    mol, reason = None, "nothing left after standardisation"
                elif parse(smiles)[0] is None:
                    mol, reason = None, f"its standardised form does not parse again ({parse(smiles)[1]})"
            except Exception as exc:  # RDKit raises its own error types from C++
                mol, reason = None, f"standardisation failed: {str(exc).splitlines()[0][:120]}"
        out.append(Chem.MolToSmiles(mol) if mol is not None else None)
        reasons.append(reason)
    return out, reasons


def mols(smiles) -> list:
    """RDKit molecules of already standardised SMILES (a clear error for one that does not parse)."""
    quiet_rdkit()
    out = []
    for i, s in enumerate(smiles):
        mol, reason = parse(s)
        if mol is None:
            raise MedAIError(f"record {i + 1}: SMILES {str(s)[:60]!r} is not valid ({reason})")
        out.append(mol)
    return out


def scaffold(smiles: str, include_chirality: bool = False) -> str:
    """The Bemis-Murcko scaffold SMILES (``""`` for an acyclic molecule), as DeepChem computes it."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=include_chirality)
    except Exception:
        return smiles


def skeleton_key(smiles: str) -> str:
    """The first block of the InChIKey (connectivity without stereo): stereoisomers share it."""
    from rdkit import Chem

    with rdkit_messages():
        mol = Chem.MolFromSmiles(smiles)
        key = Chem.MolToInchiKey(mol) if mol is not None else ""
    return key.split("-")[0] if key else smiles


# -- similarity ------------------------------------------------------------------------------------------

def fingerprints(smiles, radius: int = DOMAIN_RADIUS, n_bits: int = DOMAIN_BITS) -> list:
    """Morgan bit vectors (RDKit ``ExplicitBitVect``)."""
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return [generator.GetFingerprint(m) for m in mols(smiles)]


def pack(fps) -> np.ndarray:
    """Bit vectors -> ``(n, n_bits / 8)`` uint8 (what an artifact stores: no SMILES, no structures)."""
    from rdkit import DataStructs

    out = []
    for fp in fps:
        bits = np.zeros(fp.GetNumBits(), dtype=np.uint8)
        DataStructs.ConvertToNumpyArray(fp, bits)
        out.append(np.packbits(bits))
    return np.asarray(out, dtype=np.uint8).reshape(len(out), -1)


def unpack(packed: np.ndarray) -> list:
    from rdkit import DataStructs

    out = []
    for row in np.asarray(packed, dtype=np.uint8):
        fp = DataStructs.ExplicitBitVect(int(row.size * 8))
        fp.SetBitsFromList(np.flatnonzero(np.unpackbits(row)).tolist())
        out.append(fp)
    return out


def nearest_similarity(query_fps, reference_fps) -> np.ndarray:
    """For each query fingerprint, its greatest Tanimoto similarity to any reference fingerprint."""
    from rdkit import DataStructs

    if not reference_fps:
        return np.zeros(len(query_fps))
    return np.array([max(DataStructs.BulkTanimotoSimilarity(fp, reference_fps)) for fp in query_fps])

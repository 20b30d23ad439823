"""Per-atom contributions and RDKit similarity maps.

- Tree models (random forest, LightGBM, their average): RDKit's fingerprint-bit attribution for a model (Riniker &
  Landrum 2013): an atom's weight is the change of the model's output when the Morgan environments centred on
  that atom are taken out of the molecule's features.
- chemprop: gradient x input of the output with respect to each atom's features.

The weights are drawn with ``SimilarityMaps.GetSimilarityMapFromWeights`` (green raises the output, pink lowers it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.errors import MedAIError


def explained_output(model, s: np.ndarray) -> tuple[int, str]:
    """Which output of the model a record's explanation is about (its column in the learner's output)."""
    target = model.target
    if target.kind == "binary":
        return target.positive_index, f"probability of {target.positive_label!r}"
    if target.kind == "regression":
        return 0, f"predicted {target.column}"
    k = int(np.argmax(s))
    noun = "label" if target.kind == "multilabel" else "class"
    return k, f"probability of {noun} {target.classes[k]!r}"


def forest_atom_weights(learner, smiles: str, output: int) -> np.ndarray:
    from medai.modalities.molecules.chem import mols
    from medai.modalities.molecules.features import morgan_bit_atoms

    featurizer = learner.featurizer
    if "morgan" not in featurizer.kinds:
        raise MedAIError("per-atom maps of a tree model need Morgan features (--features morgan,...)")
    offset = featurizer.names().index(f"ecfp{2 * featurizer.radius}_0")
    mol = mols([smiles])[0]
    row = featurizer.transform([smiles])[0]
    n_atoms = mol.GetNumAtoms()
    probes = np.repeat(row[None, :], n_atoms + 1, axis=0)
    for bit, environments in morgan_bit_atoms(mol, featurizer.radius, featurizer.n_bits).items():
        for centre, _radius in environments:
            probes[centre + 1, offset + bit] -= 1
    out = np.asarray(learner.output(probes), dtype=float)
    out = out.reshape(len(probes), -1)[:, output if out.ndim > 1 else 0]
    return out[0] - out[1:]


def atom_weights(learner, smiles: str, output: int) -> np.ndarray:
    if hasattr(learner, "atom_weights"):
        return learner.atom_weights(smiles, output)
    return forest_atom_weights(learner, smiles, output)


def similarity_map_png(smiles: str, weights: np.ndarray, size: int = 400) -> bytes:
    from rdkit.Chem.Draw import SimilarityMaps, rdMolDraw2D

    from medai.modalities.molecules.chem import mols, rdkit_messages

    mol = mols([smiles])[0]
    weights = np.asarray(weights, dtype=float)
    scale = float(np.max(np.abs(weights))) or 1.0
    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    with rdkit_messages():
        SimilarityMaps.GetSimilarityMapFromWeights(mol, [float(w) for w in weights / scale], draw2d=drawer)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def explain_molecules(model, X, top_k: int = 5, picture: bool = True) -> list[dict[str, Any]]:
    from medai.modalities.molecules.chem import mols

    scores = np.asarray(model.learner.predict_proba(X) if model.target.kind != "regression"
                        else model.learner.predict(X), dtype=float)
    out = []
    for i, smiles in enumerate(X):
        row = scores[i] if scores.ndim > 1 else scores[i:i + 1]
        output, about = explained_output(model, row)
        weights = atom_weights(model.learner, smiles, output)
        mol = mols([smiles])[0]
        order = np.argsort(-np.abs(weights))[:top_k]
        contributions = [{"feature": f"atom {int(j) + 1} {mol.GetAtomWithIdx(int(j)).GetSymbol()}",
                          "value": mol.GetAtomWithIdx(int(j)).GetSymbol(), "contribution": float(weights[j])}
                         for j in order]
        summary = "; ".join(f"{c['feature']} {c['contribution']:+.3f}" for c in contributions)
        item = {"contributions": contributions, "explains": about, "summary": summary, "smiles": str(smiles),
                "atom_weights": [round(float(w), 6) for w in weights]}
        if picture:
            item["image_png"] = similarity_map_png(smiles, weights)
        out.append(item)
    return out

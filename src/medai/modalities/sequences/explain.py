"""Why a sequence model predicts what it does.

- **In-silico mutagenesis** (any model): every position is changed to every other letter of the alphabet and the
  change of the explained probability recorded (``delta[position, letter]``); a position's saliency is how much
  the probability falls, on average, when its letter is replaced (positive: the letter supports the prediction).
- **Gradients** (the CNN): gradient x input of the explained probability with respect to the one-hot input.
- **Top k-mers** of a k-mer model (linear weights, or LightGBM's gain).
- **Motif**: the most salient window of each explained sequence, aligned and counted into a position weight
  matrix, drawn as an information-content logo.

Pictures: a saliency logo (each letter as tall as its saliency, below the line when it argues against the
prediction) over a heat strip of the mutagenesis matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.modalities.sequences.alphabet import Alphabet

MAX_ISM_LENGTH = 5000  # longer sequences: mutagenesis would score too many variants
COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "U": "#D62839"}
PROTEIN_COLOURS = {**{c: "#255C99" for c in "KRH"}, **{c: "#D62839" for c in "DE"},
                   **{c: "#109648" for c in "STNQCGY"}, **{c: "#222222" for c in "AVLIPWFM"}}


def explained_class(model, proba: np.ndarray) -> tuple[int, str]:
    target = model.target
    if target.kind == "binary":
        return target.positive_index, f"probability of {target.positive_label!r}"
    k = int(np.argmax(proba))
    return k, f"probability of class {target.classes[k]!r}"


def mutagenesis(predict_proba, sequence: str, alphabet: Alphabet, output: int) -> tuple[np.ndarray, float]:
    """``delta[position, letter]``: the explained probability of each single-letter variant minus the
    original's (0 for the original letter), and the original probability."""
    letters = alphabet.letters
    if len(sequence) > MAX_ISM_LENGTH:
        from medai.errors import MedAIError

        raise MedAIError(f"in-silico mutagenesis covers sequences up to {MAX_ISM_LENGTH} letters; this one has "
                         f"{len(sequence)}")
    variants, where = [sequence], []
    for i, original in enumerate(sequence):
        for j, letter in enumerate(letters):
            if letter != original:
                variants.append(sequence[:i] + letter + sequence[i + 1:])
                where.append((i, j))
    proba = np.asarray(predict_proba(variants), dtype=float)[:, output]
    delta = np.zeros((len(sequence), len(letters)))
    for (i, j), p in zip(where, proba[1:], strict=True):
        delta[i, j] = p - proba[0]
    return delta, float(proba[0])


def saliency_from_delta(delta: np.ndarray, sequence: str, alphabet: Alphabet) -> np.ndarray:
    """How much the probability falls, on average over the other letters, when a position's letter changes."""
    letters = alphabet.letters
    saliency = np.zeros(len(sequence))
    for i, original in enumerate(sequence):
        others = [j for j, letter in enumerate(letters) if letter != original]
        saliency[i] = -float(np.mean(delta[i, others])) if others else 0.0
    return saliency


def salient_window(saliency: np.ndarray, width: int) -> int:
    """Start of the window of ``width`` positions with the largest summed (positive) saliency."""
    if len(saliency) <= width:
        return 0
    sums = np.convolve(np.clip(saliency, 0, None), np.ones(width), mode="valid")
    return int(np.argmax(sums))


def position_weight_matrix(windows: list[str], alphabet: Alphabet) -> np.ndarray:
    """Letter frequencies per position (rows: positions, columns: letters), with a pseudo-count of 0.5."""
    letters = alphabet.letters
    width = max(len(w) for w in windows)
    counts = np.full((width, len(letters)), 0.5)
    for window in windows:
        for i, character in enumerate(window):
            for letter in alphabet.codes.get(character, character):
                if letter in letters:
                    counts[i, letters.index(letter)] += 1.0 / len(alphabet.codes.get(character, character))
    return counts / counts.sum(axis=1, keepdims=True)


def information_content(pwm: np.ndarray) -> np.ndarray:
    """Letter heights of an information-content logo: frequency x (log2(letters) - entropy)."""
    entropy = -(pwm * np.log2(pwm)).sum(axis=1)
    return pwm * (np.log2(pwm.shape[1]) - entropy)[:, None]


# -- drawing -----------------------------------------------------------------------------------------------------
def _letter(ax, letter: str, x: float, y: float, height: float, colour: str) -> None:
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    if abs(height) < 1e-9:
        return
    path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
    box = path.get_extents()
    width = box.width or 1.0
    transform = (Affine2D().translate(-box.x0, -box.y0).scale(0.9 / width, abs(height) / (box.height or 1.0))
                 .translate(x - 0.45, y if height > 0 else y + height))
    ax.add_patch(PathPatch(transform.transform_path(path), facecolor=colour, edgecolor="none"))


def _colour(letter: str, alphabet: Alphabet) -> str:
    return (COLOURS if alphabet.is_nucleotide else PROTEIN_COLOURS).get(letter, "#777777")


def draw_logo(ax, heights: np.ndarray, letters: str, alphabet: Alphabet, start: int = 1) -> None:
    """Stacked letters per position (``heights``: positions x letters, non-negative), smallest at the bottom."""
    for i, row in enumerate(heights):
        y = 0.0
        for j in np.argsort(row):
            if row[j] > 0:
                _letter(ax, letters[j], i + start, y, row[j], _colour(letters[j], alphabet))
                y += row[j]
    ax.set_xlim(start - 0.6, start + len(heights) - 0.4)
    ax.set_ylim(0, max(1e-6, heights.sum(axis=1).max()) * 1.05)


def saliency_png(sequence: str, saliency: np.ndarray, delta: np.ndarray | None, alphabet: Alphabet, title: str,
                 shown: int = 120) -> bytes:
    """A saliency logo of the sequence over a heat strip of the mutagenesis matrix; for long sequences the
    ``shown`` positions around the most salient one."""
    from medai.evaluation.plots import png_bytes, pyplot

    plt = pyplot()
    start = 0
    if len(sequence) > shown:
        centre = int(np.argmax(np.abs(saliency)))
        start = int(np.clip(centre - shown // 2, 0, len(sequence) - shown))
    end = min(len(sequence), start + shown)
    part, values = sequence[start:end], saliency[start:end]
    rows = 2 if delta is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(max(6.0, 0.16 * len(part) + 1.5), 2.2 * rows + 0.3), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1.3][:rows]})
    ax = axes[0, 0]
    for i, (letter, value) in enumerate(zip(part, values, strict=True)):
        _letter(ax, letter, start + i + 1, 0.0, value, _colour(letter, alphabet))
    top = max(1e-6, float(np.abs(values).max()))
    ax.set_xlim(start + 0.4, end + 0.6)
    ax.set_ylim(min(0.0, float(values.min())) * 1.1 - 1e-9, max(0.0, float(values.max())) * 1.1 + top * 0.02)
    ax.axhline(0, color="#999999", linewidth=0.5)
    ax.set_ylabel("saliency")
    ax.set_title(title, fontsize=9)
    if delta is not None:
        ax2 = axes[1, 0]
        limit = max(1e-6, float(np.abs(delta[start:end]).max()))
        image = ax2.imshow(delta[start:end].T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                           extent=(start + 0.5, end + 0.5, len(alphabet.letters) - 0.5, -0.5))
        ax2.set_yticks(range(len(alphabet.letters)), list(alphabet.letters))
        ax2.set_xlabel("position")
        ax2.set_xlim(start + 0.4, end + 0.6)
        fig.colorbar(image, ax=ax2, orientation="vertical", pad=0.01, label="change of probability")
    else:
        ax.set_xlabel("position")
    return png_bytes(fig)


def motif_png(pwm: np.ndarray, alphabet: Alphabet, title: str) -> bytes:
    from medai.evaluation.plots import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(pwm) + 1.5), 2.6))
    draw_logo(ax, information_content(pwm), alphabet.letters, alphabet)
    ax.set_ylim(0, np.log2(len(alphabet.letters)))
    ax.set_ylabel("bits")
    ax.set_xlabel("position in the motif")
    ax.set_title(title, fontsize=9)
    return png_bytes(fig)


def kmer_table(learner, classes: list[str], top: int = 10) -> dict[str, Any] | None:
    """The k-mers with the largest weights towards each class (a table for the report)."""
    if not hasattr(learner, "top_kmers"):
        return None
    rows = []
    _, what = learner.weights()
    for cls, kmers in learner.top_kmers(top).items():
        name = "all classes" if cls < 0 else classes[cls]
        for rank, (kmer, weight) in enumerate(kmers, start=1):
            rows.append([name, rank, kmer, round(weight, 4)])
    if len(classes) == 2 and len({r[0] for r in rows}) == 2:  # binary: both directions are one weight vector
        rows = [r for r in rows if r[0] == classes[1]] + [r for r in rows if r[0] == classes[0]]
    return {"title": f"Top k-mers of the model ({what})",
            "note": "positional k-mers read 'position:k-mer' (position from 0)",
            "header": ["class", "rank", "k-mer", "weight"], "rows": rows}

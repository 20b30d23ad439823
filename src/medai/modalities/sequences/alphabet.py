"""Biological alphabets: which one a set of sequences is written in (DNA, RNA or protein), IUPAC ambiguity
codes, soft-masking (lower case) and gaps, and the check of every record against the alphabet.

A sequence is cleaned to upper case without white space or alignment gaps; what was changed is counted so
the reader can say it. A character outside the alphabet (IUPAC codes included) makes the record invalid, and
the reason names the record, the character and its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

# IUPAC nucleotide codes (Cornish-Bowden 1985): each ambiguity code and the bases it stands for
DNA_AMBIGUITY = {"R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC", "B": "CGT", "D": "AGT",
                 "H": "ACT", "V": "ACG", "N": "ACGT"}
PROTEIN_AMBIGUITY = {"B": "DN", "Z": "EQ", "J": "IL", "X": "ACDEFGHIKLMNPQRSTVWY"}
ALPHABETS = {
    "dna": "ACGT",
    "rna": "ACGU",
    "protein": "ACDEFGHIKLMNPQRSTVWY",
}
EXTRA_LETTERS = {"protein": "UO*"}  # selenocysteine, pyrrolysine, stop: kept as their own symbols
GAPS = "-."
PROTEIN_ONLY = set("EFILPQ")  # letters that are neither a base nor an IUPAC nucleotide code
NUCLEOTIDE_SHARE = 0.9  # a record is nucleotides when this share of its letters are A, C, G, T, U or N


@dataclass(frozen=True)
class Alphabet:
    """One alphabet: its letters, its ambiguity codes, and how ambiguity is handled (``keep``: a code is a
    symbol of its own; ``expand``: it stands for each of its letters with equal weight)."""

    name: str
    ambiguity: str = "keep"

    @property
    def letters(self) -> str:
        return ALPHABETS[self.name]

    @property
    def codes(self) -> dict[str, str]:
        if self.name == "protein":
            return PROTEIN_AMBIGUITY
        if self.name == "rna":
            return {code: bases.replace("T", "U") for code, bases in DNA_AMBIGUITY.items()}
        return DNA_AMBIGUITY

    @property
    def valid(self) -> set[str]:
        return set(self.letters) | set(self.codes) | set(EXTRA_LETTERS.get(self.name, ""))

    @property
    def symbols(self) -> str:
        """The symbols a one-hot encoding has a channel for (ambiguity expanded: the letters only)."""
        if self.ambiguity == "expand":
            return self.letters
        return self.letters + "".join(sorted(self.valid - set(self.letters)))

    @property
    def is_nucleotide(self) -> bool:
        return self.name in ("dna", "rna")

    def expansions(self, symbol: str) -> str:
        """The letters a symbol stands for (itself for a plain letter, or an unexpanded extra symbol)."""
        return self.codes.get(symbol, symbol) if self.ambiguity == "expand" else symbol

    def weighted_kmers(self, kmer: str, limit: int = 64) -> list[tuple[str, float]]:
        """A k-mer and its weight, or (``expand``) every plain k-mer it stands for with weight 1/n; k-mers
        that stand for more than ``limit`` plain ones are left out (mostly runs of N)."""
        if self.ambiguity != "expand" or not any(c in self.codes for c in kmer):
            return [(kmer, 1.0)]
        options = [self.expansions(c) for c in kmer]
        n = int(np.prod([len(o) for o in options]))
        if n > limit:
            return []
        return [("".join(p), 1.0 / n) for p in product(*options)]

    def describe(self) -> str:
        names = {"dna": "DNA", "rna": "RNA", "protein": "protein"}
        how = ("each IUPAC ambiguity code counts as an equal share of the letters it stands for"
               if self.ambiguity == "expand" else "IUPAC ambiguity codes are kept as symbols of their own")
        return f"{names[self.name]} ({self.letters}); {how}"


@dataclass
class Cleaned:
    sequences: list[str]
    lowercase: int = 0  # records with soft-masked (lower-case) letters, upper-cased
    gaps: int = 0  # records with alignment gaps or white space, removed


def clean(values) -> Cleaned:
    """Upper-case, white space and gaps removed; ``None``/NaN become empty strings."""
    out, lower, gaps = [], 0, 0
    for value in values:
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        if text != text.upper():
            lower += 1
        stripped = "".join(text.split())
        stripped2 = stripped.translate({ord(g): None for g in GAPS})
        if len(stripped2) != len(text):
            gaps += 1
        out.append(stripped2.upper())
    return Cleaned(out, lower, gaps)


def record_type(sequence: str) -> str:
    """``nucleotide``, ``protein`` or ``unknown`` (empty) for one cleaned sequence."""
    if not sequence:
        return "unknown"
    share = sum(sequence.count(c) for c in "ACGTUN") / len(sequence)
    if share >= NUCLEOTIDE_SHARE and not (set(sequence) & PROTEIN_ONLY):
        return "nucleotide"
    return "protein"


def detect(sequences: list[str], requested: str | None = None) -> tuple[str, list[str]]:
    """The alphabet of a set of cleaned sequences, and notes. Mixed nucleotide and protein records are an
    error naming some of each (unless ``requested`` settles it)."""
    from medai.errors import MedAIError

    if requested:
        name = requested.lower()
        if name not in ALPHABETS:
            raise MedAIError(f"--alphabet must be one of {', '.join(ALPHABETS)}, got {requested!r}")
        return name, [f"alphabet {name} (as requested)"]
    kinds = np.array([record_type(s) for s in sequences])
    nucleotide, protein = np.flatnonzero(kinds == "nucleotide"), np.flatnonzero(kinds == "protein")
    if len(nucleotide) and len(protein):
        minority, majority = (protein, "nucleotide") if len(protein) <= len(nucleotide) else (nucleotide, "protein")
        rows = ", ".join(str(i + 1) for i in minority[:5])
        raise MedAIError(f"the sequences mix nucleotides and protein: {len(nucleotide)} records read as DNA/RNA and "
                         f"{len(protein)} as protein (e.g. record(s) {rows} are not {majority}); give one kind per "
                         "file, or --alphabet dna|rna|protein to check every record against one alphabet")
    if len(protein):
        return "protein", ["alphabet detected: protein (20 amino acids)"]
    joined = "".join(sequences[: 2000])
    has_t, has_u = "T" in joined, "U" in joined
    if has_u and has_t:
        raise MedAIError("the nucleotide sequences hold both T and U: give --alphabet dna or --alphabet rna")
    name = "rna" if has_u else "dna"
    return name, [f"alphabet detected: {name.upper()} (" + ("U, no T" if has_u else "A, C, G, T") + ")"]


def invalid_reason(sequence: str, alphabet: Alphabet) -> str | None:
    """Why a cleaned sequence is not valid in ``alphabet`` (first bad character and its position), or None."""
    if not sequence:
        return "no sequence"
    valid = alphabet.valid
    for position, character in enumerate(sequence, start=1):
        if character not in valid:
            shown = character if character.isprintable() else repr(character)
            return (f"character {shown!r} at position {position} is not a {alphabet.name.upper()} letter or IUPAC "
                    "code")
    return None

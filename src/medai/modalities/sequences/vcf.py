"""Variants (VCF/BCF, read with cyvcf2) as a samples x features matrix.

Each variant's genotype gives a dosage per sample (alternate alleles: 0, 1 or 2; a missing call counts 0 and is
reported). Variants are grouped by gene when annotated - SnpEff's ``ANN``, VEP's ``CSQ`` (its field order read
from the header), or a ``GENE``/``GENEINFO`` field - else by genomic region (``--region-size`` bases). Features:
``GENE:dosage`` (the sum of dosages over the gene's variants) and, when consequences are annotated,
``GENE:consequence`` (the dosage summed by consequence, e.g. ``TP53:missense_variant``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from medai.errors import MedAIError, NotFoundError

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".bcf", ".vcf.bgz")
REGION_SIZE = 100_000


def is_vcf(path: Path) -> bool:
    return path.name.lower().endswith(VCF_SUFFIXES)


def _csq_fields(vcf) -> list[str] | None:
    try:
        description = vcf.get_header_type("CSQ")["Description"]
    except (KeyError, Exception):  # cyvcf2 raises a bare Exception for an absent header line
        return None
    match = re.search(r"Format:\s*([^\"]+)", description)
    return [f.strip() for f in match.group(1).split("|")] if match else None


def _annotation(variant, csq: list[str] | None) -> tuple[str | None, str | None]:
    """(gene, consequence) of a variant's first annotation, or (None, None)."""
    ann = variant.INFO.get("ANN")
    if ann:
        parts = str(ann).split(",")[0].split("|")
        if len(parts) > 3 and parts[3]:
            return parts[3], (parts[1].split("&")[0] or None)
    value = variant.INFO.get("CSQ")
    if value and csq:
        parts = str(value).split(",")[0].split("|")
        fields = dict(zip(csq, parts, strict=False))
        gene = fields.get("SYMBOL") or fields.get("Gene")
        if gene:
            return gene, (fields.get("Consequence", "").split("&")[0] or None)
    for key in ("GENE", "GENEINFO", "Gene", "gene"):
        value = variant.INFO.get(key)
        if value:
            return str(value).split(":")[0].split("|")[0], None
    return None, None


def read_vcf(path: Path, region_size: int = REGION_SIZE) -> tuple[pd.DataFrame, list[str]]:
    """Samples x features (dosage sums per gene or region, and per gene and consequence) and notes."""
    try:
        from cyvcf2 import VCF
    except ImportError:  # pragma: no cover
        raise MedAIError("reading VCF files needs cyvcf2: pip install 'medai[genomics]'") from None
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    try:
        vcf = VCF(str(path), gts012=True)
    except (OSError, Exception) as error:  # cyvcf2 raises plain Exceptions for unreadable files
        raise MedAIError(f"{path} is not a readable VCF/BCF file: {error}") from None
    samples = list(vcf.samples)
    if not samples:
        raise MedAIError(f"{path} has no sample columns (genotypes); a model needs one sample per record")
    csq = _csq_fields(vcf)
    columns: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(samples)))
    n_variants = by_gene = missing = 0
    for variant in vcf:
        n_variants += 1
        types = np.asarray(variant.gt_types)
        dosage = np.where(types == 3, 0, types).astype(float)  # gts012: 0 ref, 1 het, 2 hom-alt, 3 unknown
        missing += int((types == 3).sum())
        gene, consequence = _annotation(variant, csq)
        if gene:
            by_gene += 1
            columns[f"{gene}:dosage"] += dosage
            if consequence:
                columns[f"{gene}:{consequence}"] += dosage
        else:
            start = (variant.POS - 1) // region_size * region_size
            columns[f"{variant.CHROM}:{start + 1}-{start + region_size}:dosage"] += dosage
    vcf.close()
    if n_variants == 0:
        raise MedAIError(f"{path} holds no variant records")
    frame = pd.DataFrame(dict(sorted(columns.items())), index=pd.Index(samples, name="sample"))
    notes = [f"{n_variants} variants of {len(samples)} samples from {path.name}: {by_gene} grouped by gene "
             f"(annotation), {n_variants - by_gene} by {region_size:,}-base region; {frame.shape[1]} features "
             "(alternate-allele dosage sums, by consequence where annotated)"]
    if missing:
        notes.append(f"{missing} missing genotype call(s) ({missing / (n_variants * len(samples)):.1%}) count as "
                     "no alternate allele")
    return frame, notes

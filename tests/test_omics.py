"""The omics modality: expression matrices with SVD inside the pipeline (fitted on training folds only), the
breast-cancer ER-status task, and VCF variants turned into per-gene features, through the road and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import run

pytest.importorskip("sksurv")
pytest.importorskip("cyvcf2")

from medai.modalities.sequences.omics_learner import OmicsModel  # noqa: E402

RNG = np.random.default_rng(0)


def expression(n: int = 80, genes: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    X = rng.lognormal(5, 1, size=(n, genes))
    X[:, :20] *= np.where(y[:, None] == 1, 3.0, 1.0)  # 20 genes up in class 1
    frame = pd.DataFrame(X, columns=[f"G{j}" for j in range(genes)])
    frame.insert(0, "sample", [f"S{i}" for i in range(n)])
    frame["status"] = np.where(y == 1, "tumour", "normal")
    return frame


def test_the_svd_is_fitted_on_training_records_only():
    """A leaky variant (SVD fitted on training and test records together) scores the test records differently;
    the honest model's SVD is exactly the one fitted on its training records."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.pipeline import Pipeline

    frame = expression(60, 300)
    X, y = frame.filter(like="G").copy(), (frame["status"] == "tumour").to_numpy(int)
    X.iloc[40:, 100:110] += 5000.0  # the test records carry a direction the training records lack
    train, test = np.arange(40), np.arange(40, 60)
    honest = OmicsModel(n_components=5, log_transform=True).fit(X.iloc[train], y[train])
    before = Pipeline(honest.pipeline_.steps[:3])  # impute, log2, scale: fitted on training records
    own = TruncatedSVD(5, random_state=0).fit(before.transform(X.iloc[train].to_numpy()))
    assert np.allclose(np.abs(honest.reduction.components_), np.abs(own.components_), atol=1e-6)
    leaky_svd = TruncatedSVD(5, random_state=0).fit(before.transform(X.to_numpy()))
    assert not np.allclose(np.abs(leaky_svd.components_), np.abs(own.components_), atol=1e-3)
    from sklearn.linear_model import LogisticRegression

    leaky_model = LogisticRegression(max_iter=5000).fit(
        leaky_svd.transform(before.transform(X.iloc[train].to_numpy())), y[train])
    leaky = leaky_model.predict_proba(leaky_svd.transform(before.transform(X.iloc[test].to_numpy())))[:, 1]
    assert np.abs(leaky - honest.predict_proba(X.iloc[test])[:, 1]).max() > 0.05


def test_breast_cancer_er_status_with_svd_and_logistic_regression():
    from medai.road import TrainOptions, train_task

    result = train_task("breast-cancer-er", None, TrainOptions(cv="3x1", n_boot=200, show_progress=False))
    metrics = result.metrics
    assert metrics["kind"] == "binary" and metrics["target"]["positive_label"] == "positive"
    assert metrics["test"]["auroc"]["value"] > 0.8 and metrics["cv"]["auroc"]["mean"] > 0.8
    assert set(metrics["cv"]["auroc"]) >= {"mean", "ci_low", "ci_high"}
    svd = metrics["svd"]
    assert 1 < svd["components"] <= 50 and 0 < svd["explained_variance"] <= 1
    assert svd["top_loadings"][0]["genes"][0][0].startswith("X")
    assert (result.out / "plots" / "scree.png").exists()
    assert "Top-loading genes of the first components" in (result.out / "report.html").read_text()
    model = result.model
    explained = model.modality.explain(model, model.learner._frame(_breast_rows()), top_k=3)
    assert len(explained[0]["contributions"]) == 3 and explained[0]["explains"].startswith("log-odds")


def _breast_rows() -> pd.DataFrame:
    from sksurv.datasets import load_breast_cancer

    X, _ = load_breast_cancer()
    return X.drop(columns=["age", "er", "grade", "size"]).head(2)


def test_a_wide_expression_csv_through_the_cli(tmp_path, capsys):
    frame = expression(80, 600)
    frame.to_csv(tmp_path / "expr.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "expr.csv", "--target", "status", "--positive-label",
                             "tumour", "--log-transform", "--components", "10", "--cv", "3x1", "--out",
                             tmp_path / "m", "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["test"]["auroc"]["value"] > 0.8 and metrics["svd"]["components"] == 10
    assert "80 samples x 600 genes/features" in err
    code, _, err = run(["predict", tmp_path / "m", tmp_path / "expr.csv", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 80
    code, _, err = run(["train", "--data", tmp_path / "expr.csv", "--target", "status", "--positive-label", "tumour",
                        "--components", "500", "--cv", "none", "--out", tmp_path / "x"], capsys)
    assert code == 2 and "--components 500 is more than the data allow" in err and not (tmp_path / "x").exists()


VCF_HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=10000000>
##INFO=<ID=ANN,Number=.,Type=String,Description="Functional annotations: 'Allele | Annotation | Impact | Gene_Name'">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
"""


def write_vcf(path, n: int, annotated: bool = True, seed: int = 0) -> pd.DataFrame:
    """``n`` samples; cases carry more alternate alleles at the GENE1 missense sites."""
    rng = np.random.default_rng(seed)
    cases = np.array([i % 2 for i in range(n)])
    samples = [f"P{i:03d}" for i in range(n)]
    lines = [VCF_HEADER.rstrip("\n"), "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                                                  "FORMAT", *samples])]
    sites = [(1000, "GENE1", "missense_variant", 0.6), (1500, "GENE1", "synonymous_variant", 0.2),
             (250_000, "GENE2", "intron_variant", 0.2), (900_000, "GENE3", "missense_variant", 0.2)]
    for pos, gene, consequence, rate in sites:
        calls = []
        for case in cases:
            p = rate if (case and gene == "GENE1" and consequence == "missense_variant") else 0.1
            dosage = int(rng.binomial(2, p))
            calls.append(["0/0", "0/1", "1/1"][dosage])
        calls[0] = "./."  # a missing call
        info = f"ANN=T|{consequence}|MODERATE|{gene}|ID{gene}" if annotated else "."
        lines.append("\t".join(["1", str(pos), ".", "C", "T", "50", "PASS", info, "GT", *calls]))
    path.write_text("\n".join(lines) + "\n")
    return pd.DataFrame({"sample": samples, "status": np.where(cases == 1, "case", "control")})


def test_vcf_variants_become_per_gene_features(tmp_path):
    from medai.modalities.sequences.vcf import read_vcf

    labels = write_vcf(tmp_path / "a.vcf", 10)
    frame, notes = read_vcf(tmp_path / "a.vcf")
    assert list(frame.index) == list(labels["sample"])
    assert {"GENE1:dosage", "GENE1:missense_variant", "GENE1:synonymous_variant", "GENE2:dosage"} <= set(frame.columns)
    assert (frame["GENE1:dosage"] == frame["GENE1:missense_variant"] + frame["GENE1:synonymous_variant"]).all()
    assert "4 variants of 10 samples" in notes[0] and "4 missing genotype call(s)" in notes[1]
    write_vcf(tmp_path / "b.vcf", 10, annotated=False)
    regions, _ = read_vcf(tmp_path / "b.vcf", region_size=100_000)
    assert list(regions.columns) == ["1:1-100000:dosage", "1:200001-300000:dosage", "1:800001-900000:dosage"]
    (tmp_path / "c.vcf").write_text(VCF_HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n")
    from medai.errors import MedAIError

    with pytest.raises(MedAIError, match="holds no variant records"):
        read_vcf(tmp_path / "c.vcf")


def test_a_vcf_with_a_label_file_through_the_cli(tmp_path, capsys):
    labels = write_vcf(tmp_path / "cohort.vcf", 120)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "cohort.vcf", "--labels", tmp_path / "labels.csv",
                             "--target", "status", "--positive-label", "case", "--reducer", "none", "--cv", "3x1",
                             "--out", tmp_path / "m", "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["test"]["auroc"]["value"] > 0.7 and "svd" not in metrics
    code, stdout, err = run(["explain", tmp_path / "m", tmp_path / "cohort.vcf", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(stdout)
    assert len(rows) == 120 and rows[1]["sample"] == "P001"
    assert rows[1]["contributions"][0]["feature"].startswith("GENE")

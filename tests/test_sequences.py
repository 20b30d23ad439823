"""The sequences modality's reading, alphabets, k-mer features and learners, without the CLI: FASTA with header
labels or a label table, tables with a sequence column, alphabet detection, ambiguity codes, soft-masking,
invalid records and every bad input the issue names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medai.errors import MedAIError
from medai.road import TrainOptions

pytest.importorskip("Bio")

from medai.modalities.sequences.alphabet import Alphabet, clean, detect, invalid_reason  # noqa: E402
from medai.modalities.sequences.kmers import KmerVectorizer  # noqa: E402
from medai.modalities.sequences.learners import KmerClassifier, parse_k_range  # noqa: E402
from medai.modalities.sequences.reading import read_user_data  # noqa: E402

RNG = np.random.default_rng(0)


def random_dna(n: int, length: int, motif: str | None = None, at: int | None = None) -> list[str]:
    out = []
    for _ in range(n):
        s = "".join(RNG.choice(list("ACGT"), length))
        if motif:
            start = at if at is not None else int(RNG.integers(0, length - len(motif)))
            s = s[:start] + motif + s[start + len(motif):]
        out.append(s)
    return out


def write_fasta(path, records) -> None:
    path.write_text("".join(f">{header}\n{sequence}\n" for header, sequence in records))


def options(**extra) -> TrainOptions:
    target = extra.pop("target", None)
    return TrainOptions(target=target, extra=extra)


def test_alphabets_are_detected_and_mixtures_refused():
    assert detect(["ACGTN", "GGCCAT"])[0] == "dna"
    assert detect(["ACGUUA", "GGCAU"])[0] == "rna"
    assert detect(["MKTAYIAKQRQISFVKSHFSRQ", "MEEPQSDPSV"])[0] == "protein"
    with pytest.raises(MedAIError, match="mix nucleotides and protein.*record\\(s\\) 3"):
        detect(["ACGTACGT", "GGCCATTA", "MEEPQSDPSVEPPLSQETF"])
    with pytest.raises(MedAIError, match="both T and U"):
        detect(["ACGT", "ACGU"])
    assert detect(["MEEPQ"], "dna")[0] == "dna"  # a stated alphabet is checked, not detected


def test_cleaning_upper_cases_soft_masking_and_drops_gaps():
    cleaned = clean(["acgtNNacgt", "AC-GT.A", " ACG T\n", None])
    assert cleaned.sequences == ["ACGTNNACGT", "ACGTA", "ACGT", ""]
    assert cleaned.lowercase == 1 and cleaned.gaps == 2
    dna = Alphabet("dna")
    assert invalid_reason("ACGZT", dna) == "character 'Z' at position 4 is not a DNA letter or IUPAC code"
    assert invalid_reason("ACGRYN", dna) is None and invalid_reason("", dna) == "no sequence"


def test_ambiguity_codes_kept_or_expanded_in_kmers():
    keep = KmerVectorizer(k=2, k_min=2, alphabet="dna", ambiguity="keep").fit(["ACR"])
    assert set(keep.vocabulary_) == {"AC", "CR"}
    expand = KmerVectorizer(k=2, k_min=2, alphabet="dna", ambiguity="expand").fit(["ACR"])
    assert set(expand.vocabulary_) == {"AC", "CA", "CG"}
    row = expand.transform(["ACR"]).toarray()[0]
    names = list(expand.get_feature_names_out())
    assert row[names.index("CA")] == pytest.approx(0.25) and row[names.index("AC")] == pytest.approx(0.5)


def test_positional_and_spectrum_kmers():
    spectrum = KmerVectorizer(k=3, features="spectrum").fit(["AAAA", "ACGT"])
    F = spectrum.transform(["AAAA"]).toarray()[0]
    names = list(spectrum.get_feature_names_out())
    assert F[names.index("AAA")] == pytest.approx(1.0)  # 2 of 2 3-mers, as a share
    positional = KmerVectorizer(k=2, features="positional").fit(["ACGT"])
    assert "0:AC" in positional.vocabulary_ and "3:T" in positional.vocabulary_
    assert list(positional.columns_up_to(1)) == [positional.vocabulary_[t] for t in sorted(positional.vocabulary_)
                                                 if len(t.split(":")[1]) == 1]
    assert parse_k_range("1-6") == (1, 2, 3, 4, 5, 6) and parse_k_range("2,4") == (2, 4)
    with pytest.raises(MedAIError, match="--k must"):
        parse_k_range("x")


def test_kmer_svm_learns_a_planted_motif_and_calibrates():
    pos, neg = random_dna(80, 40, "TATAAT"), random_dna(80, 40)
    X, y = np.array(pos + neg, dtype=object), np.array([1] * 80 + [0] * 80)
    model = KmerClassifier(model="svm", features="spectrum", k_range="2-6", seed=0).fit(X, y)
    assert model.k_ >= 4 and model.search_  # the k chosen by inner CV can see the motif
    proba = model.predict_proba(random_dna(20, 40, "TATAAT") + random_dna(20, 40))
    assert np.allclose(proba.sum(axis=1), 1) and proba[:20, 1].mean() > 0.7 and proba[20:, 1].mean() < 0.4
    top = [kmer for kmer, _ in model.top_kmers(5)[1]]
    assert any(kmer in "TATAAT" and len(kmer) >= 4 for kmer in top)
    for name in ("logistic", "gbm"):
        other = KmerClassifier(model=name, features="spectrum", k=4, seed=0).fit(X, y)
        assert (other.predict(X) == y).mean() > 0.9


def test_fasta_with_header_labels(tmp_path):
    records = [(f"s{i} class={'pos' if i % 2 else 'neg'}", s) for i, s in enumerate(random_dna(30, 50))]
    records[3] = (records[3][0], records[3][1].lower())  # soft-masked
    records[4] = (records[4][0], records[4][1][:10] + "XZ" + records[4][1][12:])  # invalid letters
    write_fasta(tmp_path / "a.fasta", records)
    dataset = read_user_data(tmp_path / "a.fasta", options())
    assert len(dataset) == 29 and dataset.target_column == "label"
    assert set(dataset.y) == {"pos", "neg"} and dataset.input_schema["alphabet"] == "dna"
    said = " ".join(dataset.notes)
    assert "alphabet detected: DNA" in said and "1 record(s) had lower-case (soft-masked) letters" in said
    assert "record s4: character 'X' at position 11" in " ".join(dataset.warnings)
    with pytest.raises(MedAIError, match="record s4: character 'X' at position 11"):
        read_user_data(tmp_path / "a.fasta", options(invalid="error"))
    write_fasta(tmp_path / "b.fa", [(f"seq{i}|{'A' if i % 3 else 'B'}", s) for i, s in
                                     enumerate(random_dna(12, 20))])
    dataset = read_user_data(tmp_path / "b.fa", options(label_pattern=r"\|(\w+)$", target="family"))
    assert dataset.target_column == "family" and sorted(set(dataset.y)) == ["A", "B"]


def test_fasta_with_a_label_table_and_missing_ids(tmp_path):
    write_fasta(tmp_path / "p.faa", [(f"P{i}", s) for i, s in enumerate(
        ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MEEPQSDPSVEPPLSQETFSDLWKLLPENNV"] * 6)])
    pd.DataFrame({"id": [f"P{i}" for i in range(10)], "family": ["x", "y"] * 5}).to_csv(tmp_path / "l.csv",
                                                                                          index=False)
    dataset = read_user_data(tmp_path / "p.faa", options(labels=str(tmp_path / "l.csv")))
    assert len(dataset) == 10 and dataset.input_schema["alphabet"] == "protein"
    assert "2 record(s) have no label and are left out (e.g. P10, P11)" in dataset.notes
    pd.DataFrame({"id": ["Q1"], "family": ["x"]}).to_csv(tmp_path / "none.csv", index=False)
    with pytest.raises(MedAIError, match="no record id of .* is in column 'id'"):
        read_user_data(tmp_path / "p.faa", options(labels=str(tmp_path / "none.csv")))


def test_bad_sequence_files_are_clear_errors(tmp_path):
    (tmp_path / "empty.fasta").write_text("")
    with pytest.raises(MedAIError, match="holds no FASTA records"):
        read_user_data(tmp_path / "empty.fasta", options())
    write_fasta(tmp_path / "blank.fasta", [("a label=1", ""), ("b label=0", "")])
    with pytest.raises(MedAIError, match="no record holds a sequence"):
        read_user_data(tmp_path / "blank.fasta", options())
    write_fasta(tmp_path / "nolabel.fasta", [("a", "ACGTACGT")])
    with pytest.raises(MedAIError, match="need labels: give --labels FILE"):
        read_user_data(tmp_path / "nolabel.fasta", options())
    write_fasta(tmp_path / "mixed.fasta", [(f"r{i} label={i % 2}", s) for i, s in
                                            enumerate(random_dna(10, 30) + ["MEEPQSDPSVEPPLSQETFSDLW"])])
    with pytest.raises(MedAIError, match="mix nucleotides and protein"):
        read_user_data(tmp_path / "mixed.fasta", options())
    write_fasta(tmp_path / "one.fasta", [("r1 label=1", "ACGTQQQQ")])
    with pytest.raises(MedAIError, match="1 of 1 record\\(s\\) are not valid"):
        read_user_data(tmp_path / "one.fasta", options(alphabet="dna"))
    with pytest.raises(MedAIError, match="needs a group"):
        read_user_data(tmp_path / "one.fasta", options(label_pattern="label"))


def test_a_table_with_a_sequence_column_and_varying_lengths(tmp_path):
    seqs = random_dna(20, 30) + random_dna(20, 600)
    pd.DataFrame({"name": range(40), "seq": seqs, "y": [0, 1] * 20}).to_csv(tmp_path / "t.csv", index=False)
    dataset = read_user_data(tmp_path / "t.csv", options(target="y"))
    assert dataset.input_schema["sequence_column"] == "seq" and dataset.input_schema["lengths"]["max"] == 600
    assert any("vary wildly (30 to 600)" in w for w in dataset.warnings)
    assert any("the CNN pads shorter sequences" in n for n in dataset.notes)
    with pytest.raises(MedAIError, match="--target 'z' is not a column"):
        read_user_data(tmp_path / "t.csv", options(target="z"))
    pd.DataFrame({"a": ["x", "y"], "y": [0, 1]}).to_csv(tmp_path / "no.csv", index=False)
    with pytest.raises(MedAIError, match="no column of .* holds sequences"):
        read_user_data(tmp_path / "no.csv", options(target="y"))


def test_sequence_files_go_to_the_sequences_modality(tmp_path):
    from medai.modalities import modality_for_data

    write_fasta(tmp_path / "x.fasta", [("a label=1", "ACGT")])
    pd.DataFrame({"sequence": random_dna(30, 40), "y": [0, 1] * 15}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"age": range(30), "y": [0, 1] * 15}).to_csv(tmp_path / "tab.csv", index=False)
    opts = TrainOptions(target="y")
    assert modality_for_data(tmp_path / "x.fasta", opts).name == "sequences"
    assert modality_for_data(tmp_path / "s.csv", opts).name == "sequences"
    assert modality_for_data(tmp_path / "tab.csv", opts).name == "tabular"


def test_common_header_conventions_are_recognised(tmp_path):
    seqs = random_dna(20, 30)
    write_fasta(tmp_path / "pipe.fa", [(f"seq{i}|{'promoter' if i % 2 else 'background'}", s)
                                        for i, s in enumerate(seqs)])
    dataset = read_user_data(tmp_path / "pipe.fa", options())
    assert sorted(set(dataset.y)) == ["background", "promoter"]
    assert any("by the pattern" in n for n in dataset.notes)
    write_fasta(tmp_path / "space.fa", [(f"seq{i} {'yes' if i % 2 else 'no'}", s) for i, s in enumerate(seqs)])
    assert sorted(set(read_user_data(tmp_path / "space.fa", options()).y)) == ["no", "yes"]
    write_fasta(tmp_path / "ids.fa", [(f"seq{i} sample{i}", s) for i, s in enumerate(seqs)])  # ids, not labels
    with pytest.raises(MedAIError, match="need labels"):
        read_user_data(tmp_path / "ids.fa", options())

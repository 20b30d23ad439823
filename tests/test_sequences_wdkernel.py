"""The weighted-degree kernel with shifts (values by hand and against its definition written out) and the SVM on
it (learner ``wd-svm``): inner-CV choice, calibration, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medai.errors import MedAIError
from medai.modalities.sequences.alphabet import Alphabet
from medai.modalities.sequences.wdkernel import C_GRID, WDKernelSVM, encode, parse_grid, wd_kernel

RNG = np.random.default_rng(0)


def random_dna(n: int, length: int) -> list[str]:
    return ["".join(RNG.choice(list("ACGT"), length)) for _ in range(n)]


def by_definition(x: str, z: str, degree: int, shift: int) -> float:
    """sum_k beta_k sum_l sum_s delta_s ([u_{k,l+s}(x) = u_{k,l}(z)] + [u_{k,l}(x) = u_{k,l+s}(z)]), written out."""
    total = 0.0
    for k in range(1, degree + 1):
        beta = 2 * (degree - k + 1) / (degree * (degree + 1))
        for s in range(shift + 1):
            delta = 0.5 if s == 0 else 1 / (2 * (s + 1))
            for i in range(len(x) - k - s + 1):
                total += beta * delta * ((x[i + s:i + s + k] == z[i:i + k]) + (x[i:i + k] == z[i + s:i + s + k]))
    return total


def test_kernel_values_by_hand():
    # degree 2: beta_1 = 2/3, beta_2 = 1/3. AAAA with itself: 4 1-mers and 3 2-mers; with AAAT: 3 and 2
    K = wd_kernel(["AAAA", "AAAT"], degree=2, shift=0, normalize=False)
    assert K == pytest.approx(np.array([[11 / 3, 8 / 3], [8 / 3, 11 / 3]]), abs=1e-6)
    # ACGT vs CGTA share nothing in place; shifted by one, CGT (1-mers x3, 2-mers CG, GT) at weight 1/4
    assert wd_kernel(["ACGT"], ["CGTA"], degree=1, shift=0, normalize=False)[0, 0] == 0
    assert wd_kernel(["ACGT"], ["CGTA"], degree=1, shift=1, normalize=False)[0, 0] == pytest.approx(3 / 4)
    assert wd_kernel(["ACGT"], ["CGTA"], degree=2, shift=1, normalize=False)[0, 0] == pytest.approx(
        (3 * 2 / 3 + 2 * 1 / 3) / 4)
    normalised = wd_kernel(["AAAA", "AAAT"], degree=2, shift=0)
    assert normalised[0, 1] == pytest.approx(8 / 11, abs=1e-6) and np.allclose(np.diag(normalised), 1)


@pytest.mark.parametrize(("degree", "shift"), [(1, 0), (3, 0), (5, 2), (12, 4), (20, 11)])
def test_kernel_equals_its_definition(degree, shift):
    seqs = random_dna(6, 12) + ["ACGTNACGTACG"]
    expected = np.array([[by_definition(a, b, degree, shift) for b in seqs] for a in seqs])
    K = wd_kernel(seqs, degree=degree, shift=shift, normalize=False)
    assert K == pytest.approx(expected, abs=1e-5) and np.allclose(K, K.T)
    assert wd_kernel(seqs[:3], seqs, degree=degree, shift=shift, normalize=False) == pytest.approx(expected[:3],
                                                                                                   abs=1e-5)


def test_ambiguity_codes_match_themselves_when_kept_and_nothing_when_expanded():
    assert wd_kernel(["ANA"], ["ANA"], degree=1, normalize=False)[0, 0] == pytest.approx(3)
    assert wd_kernel(["ANA"], ["ANA"], degree=1, ambiguity="expand", normalize=False)[0, 0] == pytest.approx(2)


def test_wd_svm_learns_a_positional_motif_chosen_by_inner_cv_and_calibrates():
    def planted(n, at):
        out = random_dna(n, 40)
        return [s[:at] + "GTAAGT" + s[at + 6:] for s in out]

    # the motif sits at position 15 or 16: shifts let the kernel see it in both places
    X = planted(40, 15) + planted(40, 16) + random_dna(80, 40)
    y = np.array([1] * 80 + [0] * 80)
    model = WDKernelSVM(degree="3,8", shift="0,1", seed=0).fit(X, y)
    assert len(model.search_) == 2 * 2 * len(C_GRID) and model.degree_ in (3, 8) and model.shift_ in (0, 1)
    proba = model.predict_proba(planted(10, 15) + planted(10, 16) + random_dna(20, 40))
    assert np.allclose(proba.sum(axis=1), 1) and proba[:20, 1].mean() > 0.8 and proba[20:, 1].mean() < 0.3
    assert (model.predict(X) == y).mean() > 0.95
    assert model.describe().startswith("SVM on the weighted-degree kernel (degree ")
    # only the support sequences are kept, yet the scores equal those from the kernel to every training sequence
    new = random_dna(5, 40)
    full = wd_kernel(new, X, degree=model.degree_, shift=model.shift_)
    assert len(model.support_codes_) <= len(X)
    assert model.svm_.decision_function(model.kernel_to_support(new)) == pytest.approx(
        model.svm_.decision_function(full), abs=1e-6)


def test_bad_input_is_a_clear_error():
    with pytest.raises(MedAIError, match="aligned sequences of one length \\(4\\); 1 sequence\\(s\\) differ, "
                                         "e.g. sequence 2 has 5 letters"):
        wd_kernel(["ACGT", "ACGTA"])
    model = WDKernelSVM(degree="2", shift="0", C=1.0).fit(random_dna(20, 10), [0, 1] * 10)
    with pytest.raises(MedAIError, match="aligned sequences of one length \\(10\\)"):
        model.predict(["ACGT"])
    with pytest.raises(MedAIError, match="sequence 1: character 'Z' at position 3"):
        encode(["ACZT"], Alphabet("dna"))
    with pytest.raises(MedAIError, match="single class"):
        WDKernelSVM().fit(random_dna(4, 10), [1, 1, 1, 1])
    with pytest.raises(MedAIError, match="degree must be a number or a list"):
        parse_grid("x", "degree", 1)
    with pytest.raises(MedAIError, match="shift must be 0 or more"):
        parse_grid("-1", "shift", 0)

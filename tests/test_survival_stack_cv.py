"""What the survival combination study (benchmarks/survival_stack_cv.py) relies on: every rule turns out-of-fold
member scores into non-negative weights that sum to one, computed from the out-of-fold scores only; the weighted
rules favour the member that ranks the inner held-out records best; Haberman's 5-year status becomes a survival
table whose C-index is the AUROC of death within 5 years; the treatment benchmark's paired gap over seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data

from medai.evaluation.kinds.survival import harrell

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import survival_stack_cv as study  # noqa: E402


def _row(seed: int = 0) -> dict:
    """A fake nested-CV record: 'cox-ridge' ranks every inner fold perfectly, 'rsf' half-well, the rest at random;
    its outer held-out part is ranked perfectly only by 'cox-spline' (no rule may look at it)."""
    rng = np.random.default_rng(seed)

    def fold(n: int, perfect: str) -> dict:
        time = rng.permutation(np.arange(1.0, n + 1))
        y = np.column_stack([time, np.ones(n)])
        truth = -time  # higher risk = earlier event
        scores = {}
        for m in study.MEMBERS:
            if m == perfect:
                s = truth
            elif m == "rsf" and perfect == "cox-ridge":
                s = truth + rng.normal(0, n / 2, n)
            else:
                s = rng.normal(size=n)
            pct = (np.argsort(np.argsort(s)) + 0.5) / n
            scores[m] = (pct.tolist(), ((s - s.mean()) / s.std()).tolist())
        return {"y": y.tolist(), "scores": scores}

    return {"oof": [fold(30, "cox-ridge") for _ in range(3)], "held": fold(30, "cox-spline")}


RULES = [rule for rule, _ in study.RULES.values()]


@pytest.mark.parametrize("rule", RULES, ids=list(study.RULES))
def test_every_rule_gives_non_negative_weights_that_sum_to_one(rule):
    weights = rule(_row())
    assert set(weights) <= set(study.MEMBERS)
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)


def test_weighted_rules_follow_the_out_of_fold_scores_not_the_held_out_part():
    row = _row()
    assert study.oof_c(row, {"cox-ridge": 1.0}) == pytest.approx(1.0)
    assert study.argmax(study.BASE)(row) == {"cox-ridge": 1.0}
    stacked = study.simplex(study.BASE)(row)
    assert max(stacked, key=stacked.get) == "cox-ridge" and stacked["cox-ridge"] > 0.5
    greedy = study.greedy(study.MEMBERS)(row)
    assert max(greedy, key=greedy.get) == "cox-ridge"
    weighted = study.c_weighted(study.BASE)(row)
    # weight proportional to out-of-fold C - 1/2: the perfect member gets the most, the cox-spline (random
    # out of fold, perfect on the held-out part the rule must not see) the least
    assert weighted["cox-ridge"] > weighted["rsf"] > weighted["cox-spline"]
    shrunk = study.simplex(study.BASE, shrink=0.5)(row)
    assert all(w >= 0.5 / 3 - 1e-12 for w in shrunk.values())
    # and the outer held-out C-index of the combination is what the report averages
    held = harrell(np.asarray(row["held"]["y"]), study.combined(row["held"], {"cox-spline": 1.0}))
    assert held == pytest.approx(1.0)


def test_haberman_status_becomes_events_at_two_and_a_half_years_and_survivors_censored_at_five():
    require_data("tabular/haberman_survival/haberman.csv")
    X, y = study.load("haberman")
    assert list(X.columns) == ["age", "op_year", "nodes"] and X.shape == (306, 3)
    assert int(y[:, 1].sum()) == 81  # status 2 = died within 5 years
    assert set(y[y[:, 1] == 1, 0]) == {2.5} and set(y[y[:, 1] == 0, 0]) == {5.0}
    # every death-survivor pair is comparable and no other pair is: Harrell's C-index is the AUROC
    from sklearn.metrics import roc_auc_score

    risk = X["nodes"].to_numpy()
    assert harrell(y, risk) == pytest.approx(roc_auc_score(y[:, 1], risk))


def test_treatment_benchmark_paired_gap_uses_a_t_interval_over_seeds():
    from treatment import paired

    # the veterans figures of the issue: ours 0.691 vs Cox 0.704 over 5 seeds, one seed making the gap
    ours, cox = [0.653, 0.720, 0.695, 0.619, 0.771], [0.647, 0.800, 0.700, 0.603, 0.768]
    assert paired(ours, cox) == "-0.012 (-0.060 to +0.036), not significant at 5%"
    assert paired([0.80, 0.81, 0.82], [0.70, 0.70, 0.71]).endswith(", significant at 5%")

"""Tuning always compares with a finished default configuration (``finish_default``), even when the scheduler
stopped the default trial early."""

from __future__ import annotations

from medai.scale.tune import finish_default


def _row(trial, config, score, finished):
    return {"trial": trial, "config": config, "score": score, "finished": finished, "error": None,
            "early_stopped": not finished, "default": config == {"C": 1.0}}


def test_a_default_stopped_early_is_scored_to_the_end_and_can_win():
    rows = [_row(0, {"C": 1.0}, 0.70, False), _row(1, {"C": 0.1}, 0.80, True)]
    complete = [rows[1]]
    calls = []
    row = finish_default(rows, complete, {"C": 1.0}, lambda: calls.append(1) or 0.85)
    assert calls == [1] and row is rows[0]
    assert row["score"] == 0.85 and row["finished"] and row["completed_after_search"]
    assert max(complete, key=lambda r: r["score"])["config"] == {"C": 1.0}  # tuned is never worse than default


def test_a_finished_default_is_not_scored_again():
    rows = [_row(0, {"C": 1.0}, 0.70, True), _row(1, {"C": 0.1}, 0.80, True)]
    row = finish_default(rows, list(rows), {"C": 1.0}, lambda: (_ for _ in ()).throw(AssertionError("scored")))
    assert row["score"] == 0.70


def test_a_default_missing_from_the_trials_is_added():
    rows = [_row(0, {"C": 0.1}, 0.80, True)]
    complete = list(rows)
    row = finish_default(rows, complete, {"C": 1.0}, lambda: 0.75)
    assert row in rows and row in complete and row["config"] == {"C": 1.0} and row["default"]


def test_no_default_configuration_means_nothing_to_finish():
    rows = [_row(0, {"C": 0.1}, 0.80, True)]
    assert finish_default(rows, list(rows), {}, lambda: 1 / 0) is None

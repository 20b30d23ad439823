"""Performance per subgroup (sex, age band, site, ...) so that a model that fails one group is visible."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.metrics import auroc, confusion

AGE_BANDS = [(0, 40, "<40"), (40, 50, "40-49"), (50, 60, "50-59"), (60, 70, "60-69"), (70, 200, ">=70")]
MIN_GROUP_SIZE = 10


def band_ages(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    out = pd.Series("missing", index=values.index, dtype=object)
    for low, high, label in AGE_BANDS:
        out[(numbers >= low) & (numbers < high)] = label
    return out


def find_subgroup_columns(columns: list[str], requested: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The requested columns that exist, else any column named like sex, gender, age, race, ethnicity, site."""
    if requested:
        return [c for c in requested if c in columns]
    wanted = {"sex", "gender", "age", "race", "ethnicity", "site", "hospital"}
    return [c for c in columns if c.lower() in wanted]


def subgroup_table(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    columns: list[str],
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict]:
    """One row per (column, group): n, positives, AUROC with 95% CI, sensitivity, specificity, PPV."""
    rows = []
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    for column in columns:
        values = frame[column].reset_index(drop=True)
        groups = band_ages(values) if column.lower() == "age" else values.map(
            lambda v: "missing" if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
        )
        for group in sorted(groups.unique(), key=str):
            mask = (groups == group).to_numpy()
            yg, pg = y[mask], p[mask]
            tn, fp, fn, tp = confusion(yg, pg, threshold)
            row = {
                "column": column, "group": str(group), "n": int(mask.sum()), "positives": int(yg.sum()),
                "auroc": None, "auroc_ci_low": None, "auroc_ci_high": None,
                "sensitivity": tp / (tp + fn) if tp + fn else None,
                "specificity": tn / (tn + fp) if tn + fp else None,
                "ppv": tp / (tp + fp) if tp + fp else None,
                "note": "",
            }
            if mask.sum() < MIN_GROUP_SIZE or len(np.unique(yg)) < 2:
                row["note"] = "too few records or a single class: no AUROC"
            else:
                ci = bootstrap_metrics(lambda i, yg=yg, pg=pg: {"auroc": auroc(yg[i], pg[i])}, yg,
                                       n_boot=n_boot, seed=seed)["auroc"]
                row.update(auroc=ci["value"], auroc_ci_low=ci["ci_low"], auroc_ci_high=ci["ci_high"])
            rows.append(row)
    return rows

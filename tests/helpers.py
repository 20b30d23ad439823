"""Small synthetic data sets for fast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def risk_frame(n: int = 240, seed: int = 0, target_values=("no", "yes"), missing: float = 0.1) -> pd.DataFrame:
    """Patients with numeric and categorical features, missing values and a learnable binary outcome."""
    rng = np.random.default_rng(seed)
    age = rng.integers(25, 85, n).astype(float)
    bp = rng.normal(130, 15, n)
    smoker = rng.choice(["never", "former", "current"], n)
    sex = rng.choice(["F", "M"], n)
    logit = 0.09 * (age - 55) + 0.06 * (bp - 130) + np.where(smoker == "current", 1.5, 0.0) - 0.3
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "patient_id": [f"P{i:05d}" for i in range(n)],
        "age": age, "systolic_bp": bp, "smoker": smoker, "sex": sex,
        "outcome": np.where(y, target_values[1], target_values[0]),
    })
    mask = rng.random(n) < missing
    frame.loc[mask, "systolic_bp"] = np.nan
    frame.loc[rng.random(n) < missing / 2, "smoker"] = np.nan
    return frame


def train_frame(frame: pd.DataFrame, out, target: str = "outcome", name: str = "risk", **options):
    """Train on ``frame`` through the road's ``--data`` path (written as CSV beside ``out``)."""
    from pathlib import Path

    from medai.road import TrainOptions, train_data

    path = Path(out).parent / f"{name}.csv"
    frame.to_csv(path, index=False)
    options.setdefault("show_progress", False)
    return train_data(path, out, TrainOptions(target=target, **options))

"""Sequence networks over hourly bins of a stay (PyTorch, small enough to train on a CPU).

Each stay becomes a grid of ``T`` hourly steps x ``V`` variables: the last value observed in the hour
(standardised with the training means and deviations), a mask (observed or not), the hours since the variable
was last observed, and its last observed value carried forward. Both networks are causal - the output at step
``t`` uses only hours ``<= t`` - so a stay is scored at hour ``h`` by the output at the step of ``h``, from the
data seen by then, and training supervises every step (weighted towards the end of the window) so early outputs
are useful for early warning.

- ``grud``: GRU-D (Che et al., Sci Rep 2018): learned per-variable decay of missing inputs towards the mean and a
  learned decay of the hidden state with the time since observations, plus the mask as input.
- ``transformer``: a causal Transformer encoder over the hourly steps (observations, mask, time since last
  observation, a learned embedding of the hour).

Weights are saved as safetensors with a JSON config (normalisation, variables, shape): nothing runs on load.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.stays import Stays

WEIGHTS, CONFIG = "network.safetensors", "network.json"
ARCHITECTURES = ("grud", "transformer")
FINAL_WEIGHT = 1.0  # loss at the end of the window; every earlier step adds STEP_WEIGHT x its mean loss
STEP_WEIGHT = 0.5
SKEW, CLIP = 2.0, 5.0  # robust scaling: log1p for variables skewed beyond SKEW; standardised values clipped at CLIP


def transform(var: np.ndarray, value: np.ndarray, log: np.ndarray | None) -> np.ndarray:
    """Values of the variables marked in ``log`` (heavy right tails: urine, lactate, enzymes ...) as log1p."""
    value = np.asarray(value, dtype=np.float32)
    if log is None or not np.any(log):
        return value
    return np.where(log[var], np.log1p(np.maximum(value, 0.0)), value).astype(np.float32)


def grid(stays: Stays, steps: int, bin_hours: float, mean: np.ndarray, std: np.ndarray,
         log: np.ndarray | None = None, clip: float | None = None) -> dict[str, np.ndarray]:
    """``x`` (last value in the bin - log1p first for variables marked in ``log`` - standardised and clipped to
    +-``clip``, 0 where missing), ``m`` (mask), ``delta`` (hours since last
    observed, scaled by the window), ``last`` (last observed value carried forward, 0 before the first) - each
    ``(n, T, V)`` float32 - and ``step`` (n,): the step at each stay's horizon."""
    n, V = len(stays), len(stays.variables)
    x = np.zeros((n, steps, V), dtype=np.float32)
    m = np.zeros((n, steps, V), dtype=np.float32)
    if len(stays.time):
        b = np.clip((stays.time / bin_hours).astype(np.int64), 0, steps - 1)
        rows = stays.rows()
        z = (transform(stays.var, stays.value, log) - mean[stays.var]) / std[stays.var]
        x[rows, b, stays.var] = np.clip(z, -clip, clip) if clip else z  # sorted by time: the last wins
        m[rows, b, stays.var] = 1.0
    delta = np.zeros_like(x)
    last = np.zeros_like(x)
    seen = np.zeros((n, V), dtype=bool)
    since = np.zeros((n, V), dtype=np.float32)
    carried = np.zeros((n, V), dtype=np.float32)
    for t in range(steps):
        if t:
            since = np.where(seen, since + bin_hours, since)
        observed = m[:, t] > 0
        carried = np.where(observed, x[:, t], carried)
        since = np.where(observed, 0.0, since)
        seen |= observed
        delta[:, t] = np.where(seen, since, steps * bin_hours) / (steps * bin_hours)
        last[:, t] = carried
    step = np.clip(np.ceil(stays.horizon / bin_hours).astype(np.int64) - 1, 0, steps - 1)
    return {"x": x, "m": m, "delta": delta, "last": last, "step": step}


def _build(architecture: str, V: int, hidden: int, n_out: int, steps: int):
    import torch
    from torch import nn

    class GRUD(nn.Module):
        def __init__(self):
            super().__init__()
            self.decay_x_w = nn.Parameter(torch.zeros(V))
            self.decay_x_b = nn.Parameter(torch.zeros(V))
            self.decay_h = nn.Linear(V, hidden)
            self.cell = nn.GRUCell(3 * V, hidden)
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(hidden, n_out))

        def forward(self, x, m, delta, last):
            h = x.new_zeros(x.shape[0], hidden)
            first = last[:, 0]  # hour-0 values (descriptors such as age) as a constant input
            outputs = []
            for t in range(x.shape[1]):
                gamma_x = torch.exp(-torch.relu(self.decay_x_w * delta[:, t] * 10 + self.decay_x_b))
                x_hat = m[:, t] * x[:, t] + (1 - m[:, t]) * gamma_x * last[:, t]  # decays towards the mean (0)
                h = torch.exp(-torch.relu(self.decay_h(delta[:, t]))) * h
                h = self.cell(torch.cat([x_hat, m[:, t], first], dim=1), h)
                outputs.append(h)
            return self.head(torch.stack(outputs, dim=1))

    class CausalTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(3 * V, hidden)
            self.hour = nn.Embedding(steps, hidden)
            layer = nn.TransformerEncoderLayer(hidden, nhead=4, dim_feedforward=2 * hidden, dropout=0.1,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Dropout(0.2), nn.Linear(hidden, n_out))

        def forward(self, x, m, delta, last):
            T = x.shape[1]
            z = self.embed(torch.cat([last, m, delta], dim=2)) + self.hour(torch.arange(T, device=x.device))
            causal = torch.triu(torch.full((T, T), float("-inf"), device=x.device), diagonal=1)
            return self.head(self.encoder(z, mask=causal))

    if architecture == "grud":
        return GRUD()
    if architecture == "transformer":
        return CausalTransformer()
    raise MedAIError(f"unknown network {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def validation_score(proba: np.ndarray, y: np.ndarray, binary: bool) -> float:
    """What early stopping keeps the best weights by: AUROC for a binary target whose validation records hold
    both classes, else the mean log-likelihood of the true class."""
    if binary and len(np.unique(y)) == 2:
        from medai.evaluation.metrics import auroc

        return float(auroc(y, proba[:, 1]))
    return float(np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-7, 1))))


class BestWeights:
    """Early stopping on a validation score (higher is better): keeps a copy of the weights of the best epoch and
    says when ``patience`` epochs in a row brought no improvement of more than 1e-4."""

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best, self.state, self.stale, self.epoch = -np.inf, None, 0, 0

    def update(self, network, score: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s score; True when training should stop."""
        if score > self.best + 1e-4:
            self.best, self.stale, self.epoch = score, 0, epoch
            self.state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self, network) -> None:
        """Put the best epoch's weights back (if any epoch was scored) and switch to evaluation."""
        if self.state is not None:
            network.load_state_dict(self.state)
        network.eval()


class SequenceNetwork(BaseEstimator):
    """GRU-D or a causal Transformer over hourly bins; ``predict_proba`` at each stay's horizon."""

    def __init__(self, architecture: str = "grud", n_classes: int = 2, hidden: int = 64, epochs: int = 30,
                 batch_size: int = 64, learning_rate: float = 1e-3, bin_hours: float = 1.0, patience: int = 6,
                 scaling: str = "robust", seed: int = 0, threads: int = 1, progress: bool = False):
        self.architecture = architecture
        self.n_classes = n_classes
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.bin_hours = bin_hours
        self.patience = patience
        self.scaling = scaling
        self.seed = seed
        self.threads = threads
        self.progress = progress

    def describe(self) -> str:
        return {"grud": "GRU-D (learned decay of inputs and state, masks)",
                "transformer": "causal Transformer over hourly observations"}[self.architecture] + \
            f", hidden {self.hidden}, hourly bins"

    # -- data -------------------------------------------------------------------------------------------------
    def _grid(self, stays: Stays) -> dict[str, np.ndarray]:
        from medai.modalities.longitudinal.learners import align

        return grid(align(stays, self.variables_), self.steps_, float(self.bin_hours), self.mean_, self.std_,
                    self.log_, CLIP if self.scaling == "robust" else None)

    def _tensors(self, g: dict[str, np.ndarray], index: np.ndarray):
        import torch

        return [torch.from_numpy(g[k][index]) for k in ("x", "m", "delta", "last")]

    # -- fitting ----------------------------------------------------------------------------------------------
    def fit(self, stays: Stays, y, stays_val: Stays | None = None, y_val=None):
        import torch

        torch.manual_seed(int(self.seed))
        torch.set_num_threads(int(self.threads))
        if self.architecture not in ARCHITECTURES:
            raise MedAIError(f"unknown network {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
        y = np.asarray(y).astype(np.int64)
        self.classes_ = np.arange(int(self.n_classes))
        self.variables_ = tuple(stays.variables)
        V = len(self.variables_)
        if self.scaling not in ("robust", "standard"):
            raise MedAIError(f"scaling must be 'robust' or 'standard', not {self.scaling!r}")
        mean = np.zeros(V, dtype=np.float32)
        std = np.ones(V, dtype=np.float32)
        log = np.zeros(V, dtype=bool)
        for v in range(V):
            values = stays.value[stays.var == v].astype(np.float64)
            if self.scaling == "robust" and len(values) > 2 and values.min() >= 0 and np.std(values) > 0:
                skew = np.mean((values - values.mean()) ** 3) / np.std(values) ** 3
                log[v] = skew > SKEW
            values = transform(np.zeros(len(values), np.int64), values, log[v:v + 1])
            if len(values):
                mean[v], std[v] = float(np.mean(values)), float(np.std(values)) or 1.0
        self.mean_, self.std_, self.log_ = mean, std, log
        end = float(np.max(stays.horizon)) if len(stays) else float(self.bin_hours)
        self.steps_ = max(1, int(np.ceil(end / float(self.bin_hours))))
        g = self._grid(stays)
        val = self._grid(stays_val) if stays_val is not None and len(stays_val) else None
        y_val = None if val is None else np.asarray(y_val).astype(np.int64)
        self.network_ = _build(self.architecture, V, int(self.hidden), int(self.n_classes), self.steps_)
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=float(self.learning_rate), weight_decay=1e-4)
        rng = np.random.default_rng(int(self.seed))
        stopper = BestWeights(self.patience)
        self.history_: list[dict[str, float]] = []
        from medai.road.common import progress

        for epoch in progress(range(int(self.epochs)), total=int(self.epochs), desc=f"{self.architecture} epochs",
                              enabled=bool(self.progress)):
            self.network_.train()
            order = rng.permutation(len(y))
            total = 0.0
            for start in range(0, len(order), int(self.batch_size)):
                index = order[start:start + int(self.batch_size)]
                loss = self._loss(self._tensors(g, index), g["step"][index], y[index])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), 1.0)
                optimiser.step()
                total += float(loss.detach()) * len(index)
            score = self._validation_score(val, y_val) if val is not None else -total
            self.history_.append({"epoch": epoch + 1, "train_loss": total / max(1, len(y)), "val_score": score})
            if stopper.update(self.network_, score, epoch + 1):
                break
        stopper.restore(self.network_)
        self.best_epoch_ = stopper.epoch
        return self

    def _loss(self, tensors, step: np.ndarray, y: np.ndarray):
        import torch
        import torch.nn.functional as F

        logits = self.network_(*tensors)  # (b, T, classes)
        target = torch.from_numpy(y)
        step_t = torch.from_numpy(step)
        final = F.cross_entropy(logits[torch.arange(len(y)), step_t], target)
        T = logits.shape[1]
        live = (torch.arange(T)[None, :] <= step_t[:, None]).float()
        every = F.cross_entropy(logits.reshape(-1, logits.shape[2]), target.repeat_interleave(T), reduction="none")
        every = (every.reshape(len(y), T) * live).sum() / live.sum()
        return FINAL_WEIGHT * final + STEP_WEIGHT * every

    def _validation_score(self, g, y) -> float:
        return validation_score(self._proba(g), y, binary=self.n_classes == 2)

    # -- predicting -------------------------------------------------------------------------------------------
    def _proba(self, g) -> np.ndarray:
        import torch

        self.network_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(g["step"]), 512):
                index = np.arange(start, min(start + 512, len(g["step"])))
                upto = int(g["step"][index].max()) + 1  # causal: the steps after the latest horizon change nothing
                logits = self.network_(*(t[:, :upto] for t in self._tensors(g, index)))
                picked = logits[torch.arange(len(index)), torch.from_numpy(g["step"][index])]
                out.append(torch.softmax(picked, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, int(self.n_classes)))

    def predict_proba(self, stays: Stays) -> np.ndarray:
        import torch

        torch.set_num_threads(int(self.threads))
        return self._proba(self._grid(stays)).astype(np.float64)

    def predict(self, stays: Stays) -> np.ndarray:
        return self.predict_proba(stays).argmax(axis=1)

    # -- files ------------------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in self.network_.state_dict().items()}
        config: dict[str, Any] = {"params": {k: v for k, v in self.get_params().items()},
                                  "variables": list(self.variables_), "mean": self.mean_.tolist(),
                                  "std": self.std_.tolist(), "log": self.log_.tolist(), "steps": self.steps_,
                                  "best_epoch": self.best_epoch_}
        return {WEIGHTS: save(state), CONFIG: json.dumps(config).encode()}

    @classmethod
    def from_files(cls, weights: bytes, config_bytes: bytes) -> SequenceNetwork:
        from safetensors.torch import load

        config = json.loads(config_bytes)
        learner = cls(**{"scaling": "standard", **config["params"]})  # saved before scaling existed: standard
        learner.variables_ = tuple(config["variables"])
        learner.mean_ = np.asarray(config["mean"], dtype=np.float32)
        learner.std_ = np.asarray(config["std"], dtype=np.float32)
        learner.log_ = np.asarray(config.get("log", [False] * len(learner.variables_)), dtype=bool)
        learner.steps_ = int(config["steps"])
        learner.best_epoch_ = int(config["best_epoch"])
        learner.classes_ = np.arange(int(learner.n_classes))
        learner.network_ = _build(learner.architecture, len(learner.variables_), int(learner.hidden),
                                  int(learner.n_classes), learner.steps_)
        learner.network_.load_state_dict(load(weights))
        learner.network_.eval()
        return learner

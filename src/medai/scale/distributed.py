"""Data-parallel training of torch learners with Ray Train (``medai train ... --ray ADDR --train-workers N``).

A learner opts in with ``supports_data_parallel = True`` and ``fit_data_parallel(X, y, X_val, y_val, *, rank,
world_size, checkpoint_dir, resume)`` (it trains on its shard with gradients averaged over the workers), plus
``save(directory)`` / ``load(directory)``. :class:`RayTrainer` runs that on N Ray Train workers
(``TorchTrainer``, the gloo backend on CPUs), checkpoints every epoch under the run's storage (rank 0 writes it;
on a multi-machine cluster give shared storage) so that a rerun with ``resume`` continues, and hands the fitted
learner back to the road, which packages it in the same artifact format as a single-worker model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from medai.errors import MedAIError
from medai.scale.cluster import require_ray


def _train_loop(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    from ray.train import Checkpoint

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    learner, X, y, X_val, y_val = ray.get(config["payload"][0])
    learner.fit_data_parallel(X, y, X_val, y_val, rank=rank, world_size=world,
                              checkpoint_dir=config["checkpoint_dir"], resume=config["resume"])
    metrics = {"best_score": float(learner.best_score_ or 0.0), "epochs": len(learner.history_)}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            learner.save(tmp)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


class RayTrainer:
    """Fits data-parallel learners on ``workers`` Ray Train workers (``cpus_per_worker`` CPUs reserved each)."""

    def __init__(self, workers: int = 2, storage: Path | None = None, resume: bool = False, name: str | None = None,
                 max_failures: int = 1, cpus_per_worker: float = 1.0):
        if workers < 1:
            raise MedAIError(f"--train-workers must be at least 1, got {workers}")
        if not cpus_per_worker > 0:
            raise MedAIError(f"CPUs per training worker must be above 0, got {cpus_per_worker}")
        self.workers, self.resume, self.max_failures = workers, resume, max_failures
        self.cpus_per_worker = float(cpus_per_worker)
        self.storage = Path(storage or tempfile.mkdtemp(prefix="medai-train-")).resolve()
        self.name = name or f"medai-train-{int(time.time())}"
        self.last_result = None

    def supports(self, learner) -> bool:
        return bool(getattr(learner, "supports_data_parallel", False))

    def fit(self, learner, X, y, X_val=None, y_val=None):
        ray = require_ray()
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        needed, free = self.workers * self.cpus_per_worker, float(ray.available_resources().get("CPU", 0.0))
        if free < needed:  # Ray Train would wait for the CPUs for ever: say so instead
            raise MedAIError(f"{self.workers} training workers need {needed:g} free CPUs; the Ray cluster has "
                             f"{free:g} free of {ray.cluster_resources().get('CPU', 0):g}: use fewer "
                             "--train-workers, or a larger cluster")
        checkpoint_dir = self.storage / self.name / "epochs"
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = ray.put((learner, X, y, X_val, y_val))
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"payload": [payload], "checkpoint_dir": str(checkpoint_dir), "resume": self.resume},
            torch_config=TorchConfig(backend="gloo"),
            scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=False,
                                         resources_per_worker={"CPU": self.cpus_per_worker}),
            run_config=RunConfig(name=self.name, storage_path=str(self.storage),
                                 failure_config=FailureConfig(max_failures=self.max_failures)),
        )
        try:
            result = trainer.fit()
        except Exception as exc:  # Ray Train wraps a worker's error; keep its last line
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise MedAIError(f"distributed training on {self.workers} workers failed: "
                             f"{lines[-1] if lines else type(exc).__name__}") from None
        self.last_result = result
        if result.checkpoint is None:
            raise MedAIError("distributed training ended without a model checkpoint from rank 0")
        with result.checkpoint.as_directory() as directory:
            fitted = type(learner).load(directory)
        fitted.progress = getattr(learner, "progress", False)
        fitted.training_ = {"workers": self.workers, "backend": "gloo", "run": str(self.storage / self.name)}
        return fitted

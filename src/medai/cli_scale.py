"""Commands and command paths that run on a Ray cluster (``medai[scale]``): ``medai predict --ray`` (batch
inference with Ray Data) and ``medai tune``; registered on the main app by :func:`register`."""

from __future__ import annotations

import time
from pathlib import Path

from medai.console import err
from medai.errors import MedAIError


def predict_on_cluster(model_ref: str, input_path: Path | None, output: Path | None, address: str, batch_size: int,
                       explain: bool | None, top_k: int, out_of_range: str) -> None:
    from medai.cli import model_dir
    from medai.scale.batch import output_format, predict_batches
    from medai.scale.cluster import ray_session

    if input_path is None:
        raise MedAIError("--ray batch inference needs INPUT: a CSV/Parquet table, a folder of tables or of files")
    if output is None:
        raise MedAIError("--ray batch inference writes its predictions to a file: give -o OUT.parquet or OUT.csv")
    if out_of_range not in ("flag", "refuse"):
        raise MedAIError(f"--out-of-range must be flag or refuse, got {out_of_range!r}")
    output_format(output)
    directory, manifest = model_dir(model_ref)
    started = time.perf_counter()
    with ray_session(address):
        result = predict_batches(directory, manifest, Path(input_path), Path(output), batch_size=batch_size,
                                 explain=bool(explain), top_k=top_k, refuse_outside=out_of_range == "refuse")
    seconds = time.perf_counter() - started
    err.print(f"{result.rows} predictions written to {result.output} ({result.batches} batches on "
              f"{result.workers} workers, {result.rows / max(seconds, 1e-9):,.0f} records/s)", markup=False,
              highlight=False)

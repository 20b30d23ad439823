"""Batch inference on a Ray cluster with Ray Data (``medai predict MODEL INPUT --ray ADDR -o OUT``).

The input streams through the cluster in batches: a table (CSV or Parquet, one file or a folder of them) for a
records model, a folder of files (images, ...) for a files model. Each worker loads the model once from the
artifact shipped to it (every file checked against the head's manifest), predicts its batches with the same
road as ``medai predict``, and the driver writes the predictions, in input order, to one Parquet or CSV file as
they arrive: its memory holds a few batches, never the whole input. The output is written to a temporary file
and renamed into place only when every record is predicted; a failed job leaves no output behind.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medai.errors import MedAIError
from medai.models.artifact import MANIFEST, read_manifest
from medai.scale.cluster import require_ray

# Ray reserves CPUs by this number (it does not limit what a process uses): most of a CPU per predicting actor,
# so that N actors spread over N CPUs, leaving room for Ray Data's own small tasks.
ACTOR_CPUS = 0.8
TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class ShippedArtifact:
    """A model artifact's files as bytes (what travels to workers) and the head's manifest to check them by."""

    files: dict[str, bytes]
    manifest: dict[str, str]

    @classmethod
    def read(cls, directory: Path, expected_manifest: dict[str, str] | None = None) -> ShippedArtifact:
        manifest = expected_manifest or read_manifest(directory)
        files = {name: (directory / name).read_bytes() for name in manifest}
        files[MANIFEST] = (directory / MANIFEST).read_bytes()
        return cls(files, manifest)

    def materialize(self, into: Path):
        """Write the files under ``into`` and load the model, refusing any file whose checksum differs."""
        from medai.road import load_model

        for name, data in self.files.items():
            path = into / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return load_model(into, self.manifest)


class Predictor:
    """A Ray Data actor: loads the model once, predicts pandas batches (records or file paths)."""

    def __init__(self, artifact: ShippedArtifact, explain: bool, top_k: int, refuse_outside: bool, source: str):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.workdir = Path(tempfile.mkdtemp(prefix="medai-model-"))
        self.model = artifact.materialize(self.workdir)
        self.explain, self.top_k, self.refuse, self.source = explain, top_k, refuse_outside, source

    def __call__(self, units: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([self.predict_unit(unit) for unit in units.to_dict("records")], ignore_index=True)

    def predict_unit(self, unit: dict[str, Any]) -> pd.DataFrame:
        from medai.data.dataset import Inputs

        model = self.model
        if unit["kind"] == "files":
            paths = [Path(p) for p in unit["path"].split("\n")]
            inputs = Inputs(model.modality.inputs_from_files(paths, model), [p.name for p in paths], "file")
            frame = model.frame(inputs, explain=self.explain, top_k=self.top_k, refuse_outside=self.refuse)
            frame.insert(1, "path", [str(p) for p in paths])
            return frame
        records = read_unit(unit)
        inputs = model.modality.inputs_from_frame(records, model, self.source)
        return model.frame(inputs, explain=self.explain, top_k=self.top_k, refuse_outside=self.refuse)

    def __del__(self):  # pragma: no cover - best effort when the actor ends
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)


@dataclass
class BatchResult:
    output: Path
    rows: int
    batches: int
    workers: int


def input_units(model, path: Path, batch_size: int, min_units: int = 1) -> list[dict[str, Any]]:
    """What to predict, cut into units the workers read themselves (the driver never reads the records): a
    batch of file paths (files models), a Parquet row group, or a run of CSV lines (records models). Files come
    in at least ``min_units`` batches when there are that many (with the default batch size of 4,096, a folder
    of 4,708 images would otherwise be two batches of unequal size for any number of workers)."""
    path = Path(path).resolve()
    if not path.exists():
        raise MedAIError(f"INPUT {path} does not exist")
    if model.input_contract == "files":
        files = model.modality.input_files(path)
        if not files:
            raise MedAIError(f"{path} holds no input files for a {model.modality.name} model")
        names = [str(p) for p in files]
        batch_size = min(batch_size, max(1, math.ceil(len(names) / min_units)))
        return [{"kind": "files", "path": "\n".join(names[i:i + batch_size]), "start": 0, "stop": 0}
                for i in range(0, len(names), batch_size)]
    tables = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    kinds = {TABLE_SUFFIXES.get(p.suffix.lower()) for p in tables}
    if not tables or None in kinds or len(kinds) != 1:
        raise MedAIError(f"batch inference on a cluster reads CSV or Parquet tables (one file or a folder of one "
                         f"kind), got {path}")
    units = []
    for table in tables:
        units += _parquet_units(table, batch_size) if kinds == {"parquet"} else _csv_units(table, batch_size)
    return units


def _parquet_units(path: Path, batch_size: int) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow's own errors: not a Parquet file, damaged
        raise MedAIError(f"{path} is not a readable Parquet file: {exc}") from None
    units = []
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        for start in range(0, rows, batch_size):  # a large row group is read once per slice of it
            units.append({"kind": "parquet", "path": str(path), "start": group * (1 << 40) + start,
                          "stop": group * (1 << 40) + min(rows, start + batch_size)})
    return units


def _csv_units(path: Path, batch_size: int) -> list[dict[str, Any]]:
    """Byte ranges of ``batch_size`` lines each (after the header), found in one streaming pass. A quoted field
    that holds a line break would be cut: such tables are refused when a unit does not parse (use Parquet)."""
    units, offsets = [], []
    with open(path, "rb") as handle:
        header = handle.readline()
        if not header.strip():
            raise MedAIError(f"{path} is empty; expected a header line and records")
        position, count, start = handle.tell(), 0, handle.tell()
        for line in handle:
            position += len(line)
            count += 1
            if count == batch_size:
                offsets.append((start, position))
                start, count = position, 0
        if count:
            offsets.append((start, position))
    for begin, stop in offsets:
        units.append({"kind": "csv", "path": str(path), "start": begin, "stop": stop})
    return units


def read_unit(unit: dict[str, Any]) -> pd.DataFrame:
    """The records of one unit, read where it runs."""
    if unit["kind"] == "parquet":
        import pyarrow.parquet as pq

        group, start = divmod(int(unit["start"]), 1 << 40)
        stop = int(unit["stop"]) - group * (1 << 40)
        table = pq.ParquetFile(unit["path"]).read_row_group(group)
        return table.slice(start, stop - start).to_pandas()
    import io

    with open(unit["path"], "rb") as handle:
        header = handle.readline()
        handle.seek(int(unit["start"]))
        body = handle.read(int(unit["stop"]) - int(unit["start"]))
    return pd.read_csv(io.BytesIO(header + body))


def output_format(output: Path) -> str:
    fmt = OUTPUT_FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise MedAIError(f"--output {output}: batch inference writes .parquet or .csv, got {Path(output).suffix!r}")
    return fmt


def predict_batches(model_dir: Path, expected_manifest: dict[str, str] | None, input_path: Path, output: Path, *,
                    workers: int | None = None, batch_size: int = 4096, explain: bool = False, top_k: int = 3,
                    refuse_outside: bool = False, max_retries: int = 3, on_batch=None) -> BatchResult:
    """Predict every record of ``input_path`` on the connected cluster and write them to ``output``."""
    from medai.road import load_model

    ray = require_ray()
    fmt = output_format(output)
    if batch_size < 1:
        raise MedAIError(f"--batch-size must be at least 1, got {batch_size}")
    model = load_model(model_dir, expected_manifest)  # checked here first: a bad artifact fails before any work
    artifact = ShippedArtifact.read(Path(model_dir), expected_manifest)
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # predictions come back in input order
    context.enable_progress_bars = False
    context.op_resource_reservation_enabled = False  # a small cluster cannot split its CPUs into reservations
    units = input_units(model, input_path, batch_size, min_units=4 * workers)  # a few units per worker
    dataset = ray.data.from_items(units, override_num_blocks=len(units))
    predictions = dataset.map_batches(
        Predictor, batch_size=1, batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=ACTOR_CPUS,
        fn_constructor_kwargs={"artifact": artifact, "explain": explain, "top_k": top_k,
                               "refuse_outside": refuse_outside, "source": str(input_path)},
        max_restarts=max_retries, max_task_retries=max_retries)
    rows = batches = 0
    with _OutputFile(Path(output), fmt) as sink:
        try:
            for batch in _batches(predictions, batch_size):
                sink.write(batch)
                rows += len(batch)
                batches += 1
                if on_batch is not None:
                    on_batch(rows)
        except Exception as exc:  # bad records (a MedAIError on a worker), a worker that kept dying
            raise MedAIError(f"batch inference failed after {rows} records: {_root_message(exc)}; no output was "
                             f"written to {output}") from None
    return BatchResult(Path(output), rows, batches, workers)


def _batches(dataset, batch_size: int) -> Iterator[pd.DataFrame]:
    yield from dataset.iter_batches(batch_format="pandas", batch_size=batch_size, prefetch_batches=2)


def _root_message(exc: BaseException) -> str:
    """The user-facing line of a Ray error (a MedAIError raised on a worker keeps its message)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, MedAIError):
        return str(cause)
    if isinstance(exc, MedAIError) and not hasattr(exc, "cause"):
        return str(exc)
    text = str(exc).strip().splitlines()
    for line in reversed(text):
        if "MedAIError" in line or "IntegrityError" in line or "NotFoundError" in line:
            return line.split(": ", 1)[-1]
    return (text[-1] if text else type(exc).__name__)[:500]


class _OutputFile:
    """Predictions appended batch by batch to a temporary file, renamed to ``path`` only when complete."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial")
        os.close(fd)
        self.tmp = Path(name)
        self.writer: Any = None
        self.schema = None
        self.handle = None

    def write(self, batch: pd.DataFrame) -> None:
        if self.fmt == "csv":
            if self.handle is None:
                self.handle = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
                batch.to_csv(self.handle, index=False)
            else:
                batch.to_csv(self.handle, index=False, header=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(batch, preserve_index=False)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table)

    def __enter__(self) -> _OutputFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for closable in (self.handle, self.writer):
            if closable is not None:
                closable.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        if self.handle is None and self.writer is None:  # nothing to predict: an empty table
            self.tmp.unlink(missing_ok=True)
            raise MedAIError("INPUT holds no records to predict; no output written")
        with open(self.tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.tmp, self.path)

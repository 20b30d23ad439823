"""Scale-out on Ray, measured on a real local cluster (a head and one worker node, one CPU each).

    python benchmarks/scale.py [batch] [cv] [tune] [distributed] [serve] [failure] [--rows 1000000]

Every section appends its rows to runs/bench-scale/results.json and the table is rebuilt from all rows measured
so far, then written to README.md (section ``scale``). The figures are what this machine gave: it has 2 cores
shared with other work, so throughput ratios say little about a real cluster and are reported as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
OUT = ROOT / "runs" / "bench-scale"
RESULTS = OUT / "results.json"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def save(section: str, rows) -> None:
    data = load_results()
    data[section] = rows
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2, default=str))


def load_average() -> str:
    return "/".join(f"{x:.0f}" for x in os.getloadavg())


# -- models and inputs --------------------------------------------------------------------------------------
def pima_model() -> Path:
    from medai.road import TrainOptions, train_task

    out = OUT / "models" / "pima-logistic"
    if not (out / "manifest.json").is_file():
        train_task("diabetes-pima", out, TrainOptions(learner="logistic", cv="none", n_boot=200, show_progress=False))
    return out


def pneumonia_model(epochs: int = 3) -> Path:
    from medai.road import TrainOptions, train_task

    out = OUT / "models" / "pneumonia-small-cnn"
    if not (out / "manifest.json").is_file():
        train_task("pneumonia-xray", out, TrainOptions(cv="none", n_boot=200, show_progress=False,
                                                       extra={"epochs": epochs, "threads": 1}))
    return out


def pima_rows_parquet(rows: int) -> Path:
    """``rows`` records drawn from Pima's (with noise), written in row groups so the writer's memory stays small."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medai.data.registry import get_dataset

    path = OUT / "inputs" / f"pima-{rows}.parquet"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    base = get_dataset("diabetes-pima").load().drop(columns=["diabetes"])
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        chunk = base.sample(n=n, replace=True, random_state=int(rng.integers(1 << 31))).reset_index(drop=True)
        numeric = chunk.select_dtypes("number").columns
        chunk[numeric] = chunk[numeric] * rng.normal(1, 0.02, size=(n, len(numeric)))
        chunk.insert(0, "record_id", np.arange(start, start + n))
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=50_000)
    writer.close()
    tmp.rename(path)
    return path


def pneumonia_png_folder() -> Path:
    """PneumoniaMNIST's 4,708 training images as PNG files."""
    import numpy as np
    from PIL import Image

    folder = OUT / "inputs" / "pneumonia-train-png"
    if folder.is_dir() and len(list(folder.glob("*.png"))) == 4708:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    data = np.load(Path(os.environ["MEDAI_DATA_DIR"]) / "imaging" / "medmnist" / "pneumoniamnist.npz")
    for i, image in enumerate(data["train_images"]):
        Image.fromarray(image).save(folder / f"train-{i:05d}.png")
    return folder


# -- sections -----------------------------------------------------------------------------------------------
DRIVER = """
import json, os, sys, time, threading
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
from pathlib import Path
from medai.scale.cluster import connect
from medai.scale.batch import predict_batches
model, source, output, workers, batch = sys.argv[1:6]
connect(sys.argv[6])
t = time.perf_counter()
arrivals = []  # (seconds, rows so far) as each batch of predictions reaches the driver
result = predict_batches(Path(model), None, Path(source), Path(output), workers=int(workers), batch_size=int(batch),
                         on_batch=lambda rows: arrivals.append((time.perf_counter() - t, rows)))
seconds = time.perf_counter() - t
# this process's own peak (VmHWM; ru_maxrss would carry the parent's peak over fork and exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
# steady state: the records after the first batch over the time after it (start-up excluded)
(t0, r0), (t1, r1) = arrivals[0], arrivals[-1]
steady = (r1 - r0) / (t1 - t0) if t1 > t0 and len(arrivals) >= 5 else None  # too few batches: not measured
print(json.dumps({"rows": result.rows, "seconds": seconds, "peak_mb": peak, "steady_per_s": steady,
                  "first_batch_s": t0, "batches": len(arrivals)}))
"""


def batch_run(address: str, model: Path, source: Path, workers: int, batch: int) -> dict:
    output = OUT / "outputs" / f"{source.stem}-{workers}w.parquet"
    output.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(model), str(source), str(output), str(workers),
                           str(batch), address], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _batch_row(what: str, workers: int, r: dict) -> dict:
    return {"what": what, "workers": workers, "records_per_s": r["rows"] / r["seconds"], "seconds": r["seconds"],
            "steady_per_s": r["steady_per_s"], "first_batch_s": r["first_batch_s"], "driver_peak_mb": r["peak_mb"],
            "load": load_average()}


def section_batch(address: str, rows: int, images: bool = True) -> list[dict]:
    out = []
    model = pima_model()
    small, large = pima_rows_parquet(rows // 10), pima_rows_parquet(rows)
    for source, workers in ((small, 2), (large, 1), (large, 2)):
        r = batch_run(address, model, source, workers, 50_000)
        out.append(_batch_row(f"tabular {r['rows']:,} rows", workers, r))
        print(out[-1], flush=True)
        save("batch", out)
    if not images:
        return out
    folder = pneumonia_png_folder()
    model = pneumonia_model()
    for workers in (1, 2):
        r = batch_run(address, model, folder, workers, 128)
        out.append(_batch_row(f"PneumoniaMNIST train images ({r['rows']:,} PNG)", workers, r))
        print(out[-1], flush=True)
    return out


def section_cv(address: str) -> list[dict]:
    from medai.parallel import using
    from medai.road import TrainOptions, train_task
    from medai.scale.cluster import connect
    from medai.scale.executor import RayExecutor

    options = dict(learner="logistic", cv="5x5", n_boot=1000, show_progress=False, seed=0)
    t = time.perf_counter()
    sequential = train_task("diabetes-pima", OUT / "cv-seq", TrainOptions(**options))
    t_seq = time.perf_counter() - t
    connect(address)
    t = time.perf_counter()
    with using(RayExecutor()):
        on_ray = train_task("diabetes-pima", OUT / "cv-ray", TrainOptions(**options))
    t_ray = time.perf_counter() - t
    equal = sequential.metrics["cv"] == on_ray.metrics["cv"] and sequential.metrics["test"] == on_ray.metrics["test"]
    row = {"what": "Pima logistic, CV 5x5 + 1000 bootstrap replicates", "equal": equal,
           "cv_auroc": sequential.metrics["cv"]["auroc"]["mean"], "sequential_s": t_seq, "ray_s": t_ray,
           "load": load_average()}
    print(row, flush=True)
    return [row]


def section_tune(address: str, trials: int) -> list[dict]:
    from medai.road import TrainOptions
    from medai.scale.cluster import connect
    from medai.scale.tune import tune_and_train

    connect(address)
    rows = []
    runs = (("diabetes-pima", "lightgbm", "cv", {}), ("breast-ultrasound", "small-cnn", "val",
                                                       {"epochs": 12, "threads": 1}))
    for task, learner, objective, extra in runs:
        t = time.perf_counter()
        outcome = tune_and_train(task, None, TrainOptions(learner=learner, cv="none", n_boot=1000,
                                                          show_progress=False, extra=extra),
                                 OUT / f"tuned-{task}", trials=trials, objective=objective, say=print)
        test = outcome.train.metrics["test"][outcome.metric]
        rows.append({"task": task, "learner": learner, "objective": objective, "trials": trials,
                     "stopped_early": sum(r["early_stopped"] for r in outcome.trials),
                     "default_val": outcome.default_score, "tuned_val": outcome.best_score,
                     "test": test, "metric": outcome.metric, "best": outcome.best,
                     "seconds": time.perf_counter() - t, "load": load_average()})
        print(rows[-1], flush=True)
    return rows


def section_distributed(address: str, seeds: list[int], epochs: int) -> list[dict]:
    from medai.parallel import training_with
    from medai.road import TrainOptions, train_task
    from medai.scale.cluster import connect
    from medai.scale.distributed import RayTrainer

    connect(address)
    rows = []
    for seed in seeds:
        for workers in (1, 2):
            options = TrainOptions(cv="none", n_boot=1000, show_progress=False, seed=seed,
                                   extra={"epochs": epochs, "threads": 1})
            t = time.perf_counter()
            with training_with(RayTrainer(workers)):
                result = train_task("pneumonia-xray", OUT / f"dist-{workers}w-s{seed}", options)
            rows.append({"seed": seed, "workers": workers, "test_auroc": result.metrics["test"]["auroc"],
                         "seconds": time.perf_counter() - t, "load": load_average()})
            print(rows[-1], flush=True)
    return rows


def _concrete(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) == "{version}" else "pima", path)


def _auth_holds(http, keys: dict[str, str]) -> dict:
    """Every API route without a key -> 401; every admin route with a viewer's or a clinician's key -> 403."""
    from medai.serving.app import create_app, iter_routes

    checked, broken = 0, []
    for path, methods, _ in iter_routes(create_app()):
        if not (path.startswith("/v1/") or path == "/metrics"):
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            target = "/v1/admin/keys/000000000000" if path.endswith("/keys/{key_id}") else _concrete(path)
            tries = [(None, 401)]
            if path.startswith("/v1/admin/"):
                tries += [(keys["viewer"], 403), (keys["clinician"], 403)]
            for key, expected in tries:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                status = http.request(method, target, headers=headers).status_code
                checked += 1
                if status != expected:
                    broken.append(f"{method} {path}: {status} (expected {expected})")
    return {"checked": checked, "broken": broken}


def section_serve(address: str, predictions: int, connections: int, replicas: int) -> list[dict]:
    """``replicas`` Serve replicas behind one HTTP proxy, ``predictions`` single-record predictions from
    ``connections`` keep-alive connections; then the audit chain must verify and every answered prediction
    must have its row (each body is unique, so its row is found by the body's sha256)."""
    import concurrent.futures
    import hashlib

    import httpx

    from medai.data.registry import get_dataset
    from medai.privacy.audit import AuditLog
    from medai.registry import Registry
    from medai.scale.cluster import connect, free_port
    from medai.scale.serve import deploy, shutdown
    from medai.serving.keys import KeyStore

    os.environ["MEDAI_RATE_LIMIT"] = str(10 * predictions)  # measure the replicas, not the per-key limiter
    model = pima_model()
    if not any(m.name == "pima" for m in Registry().list_models()):
        Registry().register(model, name="pima")
    keys = {role: KeyStore().create(f"bench-serve-{role}", role)[1] for role in ("clinician", "viewer")}
    record = get_dataset("diabetes-pima").load().drop(columns=["diabetes"]).iloc[0].to_dict()
    record = {k: (None if v != v else v) for k, v in record.items()}  # missing values travel as JSON null
    connect(address)
    url = deploy(replicas=replicas, host="127.0.0.1", port=free_port())
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(120):  # the replicas start while Serve answers 503 / connection errors
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(2)
            auth = _auth_holds(http, keys)
        before = AuditLog().count()
        per_connection = predictions // connections
        headers = {"Authorization": f"Bearer {keys['clinician']}", "Content-Type": "application/json"}

        def one_connection(c: int) -> list[tuple[int, str, float]]:
            out = []
            with httpx.Client(base_url=url, timeout=120) as http:
                for i in range(per_connection):
                    body = json.dumps({"records": [dict(record, bmi=float(f"30.{c:02d}{i:06d}1"))]}).encode()
                    t = time.perf_counter()
                    status = http.post("/v1/models/pima/predict", content=body, headers=headers).status_code
                    out.append((status, hashlib.sha256(body).hexdigest(), time.perf_counter() - t))
            return out

        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(connections) as pool:
            answered = [a for chunk in pool.map(one_connection, range(connections)) for a in chunk]
        seconds = time.perf_counter() - t
    finally:
        shutdown()
    log = AuditLog()
    rows = {r["input_sha256"] for r in log.export() if r["action"] == "predict" and r["status_code"] == 200}
    verify = log.verify()
    latencies = sorted(a[2] for a in answered)
    statuses: dict[int, int] = {}
    for status, _, _ in answered:
        statuses[status] = statuses.get(status, 0) + 1
    row = {"replicas": replicas, "connections": connections, "predictions": len(answered), "statuses": statuses,
           "seconds": seconds, "per_s": len(answered) / seconds,
           "p50_ms": 1000 * latencies[len(latencies) // 2],
           "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
           "audit_rows_added": log.count() - before, "chain_ok": verify.ok, "rows_checked": verify.checked,
           "answered_200_without_row": sum(1 for s, d, _ in answered if s == 200 and d not in rows),
           "auth_checks": auth["checked"], "auth_broken": auth["broken"], "load": load_average()}
    print(row, flush=True)
    return [row]


def _driver_with_a_crash(cluster, args: list[str], marker, delay: float) -> tuple[int, str, float]:
    """Run a driver script, kill the worker node once ``marker()`` is true (plus ``delay`` s); its exit status."""
    t = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not marker():
        time.sleep(0.5)
    time.sleep(delay)
    killed_at = time.perf_counter() - t
    if process.poll() is None:
        cluster.kill_worker_node(0)
    stdout, stderr = process.communicate()
    return process.returncode, (stdout + stderr)[-600:], killed_at


TUNE_DRIVER = """
import os, sys
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
from pathlib import Path
from medai.road import TrainOptions
from medai.scale.cluster import connect
from medai.scale.tune import tune_and_train
connect(sys.argv[1])
marker = Path(sys.argv[2])
def say(message):
    print(message, flush=True)
    marker.touch()
outcome = tune_and_train("diabetes-pima", None, TrainOptions(learner="random-forest", cv="none", n_boot=200,
                         show_progress=False), Path(sys.argv[3]), trials=8, objective="cv", say=say)
print("TUNED", len(outcome.trials), sum(r["finished"] for r in outcome.trials), flush=True)
"""


def section_failure(cluster, rows: int) -> list[dict]:
    out = []
    model, source = pima_model(), pima_rows_parquet(rows)
    output = OUT / "outputs" / "after-crash.parquet"
    output.unlink(missing_ok=True)

    def predicting() -> bool:
        return any(p.name.startswith(".after-crash") for p in output.parent.iterdir())

    code, tail, at = _driver_with_a_crash(cluster, ["-c", DRIVER, str(model), str(source), str(output), "2",
                                                    "20000", cluster.address], predicting, 3.0)
    partial = [p.name for p in output.parent.iterdir() if ".partial" in p.name]
    complete = output.is_file() and __import__("pyarrow.parquet").parquet.ParquetFile(output).metadata.num_rows == rows
    out.append({"what": f"batch inference, {rows:,} rows", "killed_after_s": at, "exit": code,
                "outcome": "completed" if code == 0 and complete else ("failed: " + tail.strip().splitlines()[-1]
                                                                      if tail.strip() else "failed"),
                "partial_files_left": len(partial), "output_complete_or_absent": complete or not output.exists()})
    print(out[-1], flush=True)
    cluster.add_worker_node()
    marker = OUT / "tune-started"
    marker.unlink(missing_ok=True)
    code, tail, at = _driver_with_a_crash(cluster, ["-c", TUNE_DRIVER, cluster.address, str(marker),
                                                    str(OUT / "tuned-after-crash")], marker.exists, 20.0)
    line = next((x for x in tail.splitlines() if x.startswith("TUNED")), "")
    out.append({"what": "tuning, 8 trials (random forest, Pima, cv)", "killed_after_s": at, "exit": code,
                "outcome": f"completed ({line})" if code == 0 else "failed: " + (tail.strip().splitlines() or [""])[-1],
                "partial_files_left": 0, "output_complete_or_absent": code == 0 or not (OUT / "tuned-after-crash")
                .exists()})
    print(out[-1], flush=True)
    cluster.add_worker_node()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sections", nargs="*", default=["batch", "cv", "tune"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--address", help="an already running cluster (else one is started here)")
    parser.add_argument("--no-images", action="store_true", help="batch: the tabular files only")
    parser.add_argument("--no-readme", action="store_true",
                        help="print the table only (the README's table is built from every section's results)")
    parser.add_argument("--predictions", type=int, default=10_000, help="serve: predictions sent")
    parser.add_argument("--replicas", type=int, default=2, help="serve: Ray Serve replicas")
    args = parser.parse_args()
    os.environ.setdefault("MEDAI_HOME", str(OUT / "home"))
    from medai.scale.cluster import LocalCluster

    cluster = None if args.address else LocalCluster(head_cpus=1, workers=1, worker_cpus=1,
                                                     object_store_mb=300).start()
    address = args.address or cluster.address
    try:
        for section in args.sections:
            if section == "batch":
                save("batch", section_batch(address, args.rows, images=not args.no_images))
            elif section == "cv":
                save("cv", section_cv(address))
            elif section == "tune":
                save("tune", section_tune(address, args.trials))
            elif section == "distributed":
                save("distributed", section_distributed(address, args.seeds, args.epochs))
            elif section == "serve":
                save("serve", section_serve(address, args.predictions, 8, args.replicas))
            elif section == "failure":
                if cluster is None:
                    raise SystemExit("the failure section kills a worker node: let it start its own cluster")
                save("failure", section_failure(cluster, args.rows // 10))
            else:
                raise SystemExit(f"unknown section {section!r}")
    finally:
        import ray

        ray.shutdown()  # this process's own connection first: a client left connected dies with the cluster
        if cluster is not None:
            cluster.stop()
    print(table())
    if args.no_readme:
        return
    from readme_table import update_readme

    update_readme("scale", table())


def _ci(entry) -> str:
    return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


def table() -> str:
    data = load_results()
    lines = []
    if data.get("batch"):
        lines += ["| batch inference | workers | records/s, whole run (start-up included) | seconds | first batch "
                  "after (s) | records/s after the first batch | driver peak RSS (MB) | load avg (1/5/15 min) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['what']} | {r['workers']} | {r['records_per_s']:,.0f} | {r['seconds']:.1f} | "
                  f"{r.get('first_batch_s', float('nan')):.1f} | "
                  f"{'-' if not r.get('steady_per_s') else format(r['steady_per_s'], ',.0f')} | "
                  f"{r['driver_peak_mb']:.0f} | {r['load']} |" for r in data["batch"]]
        lines.append("")
        for what in dict.fromkeys(r["what"] for r in data["batch"]):
            by = {r["workers"]: r for r in data["batch"] if r["what"] == what}
            if 1 in by and 2 in by:
                whole = by[2]["records_per_s"] / by[1]["records_per_s"]
                steady = (by[2].get("steady_per_s") or 0) / (by[1].get("steady_per_s") or float("inf"))
                lines.append(f"- {what}: 2 workers / 1 worker = {whole:.2f}x over the whole run, {steady:.2f}x after "
                             "the first batch (goal >= 1.7x)")
        lines.append("")
    if data.get("cv"):
        lines += ["| CV on Ray | identical to the sequential run | CV AUROC | sequential s | Ray s | load avg |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['what']} | {'yes' if r['equal'] else 'NO'} | {r['cv_auroc']:.4f} | {r['sequential_s']:.0f} | "
                  f"{r['ray_s']:.0f} | {r['load']} |" for r in data["cv"]]
        lines.append("")
    if data.get("tune"):
        lines += ["| tuning | learner | objective | trials (stopped early) | validation, default | validation, tuned |"
                  " test (95% CI) of the tuned model | seconds |", "|---|---|---|---|---|---|---|---|"]
        for r in data["tune"]:
            default = "-" if r["default_val"] is None else f"{r['default_val']:.4f}"
            lines.append(f"| {r['task']} ({r['metric']}) | {r['learner']} | {r['objective']} | {r['trials']} "
                         f"({r['stopped_early']}) | {default} | {r['tuned_val']:.4f} | {_ci(r['test'])} | "
                         f"{r['seconds']:.0f} |")
        lines.append("")
    if data.get("serve"):
        lines += ["| Ray Serve | replicas | connections | predictions answered (status: count) | per s | p50 / p99 ms "
                  "| audit chain | answered without an audit row | auth checks (broken) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| Pima logistic, one record per request | {r['replicas']} | {r['connections']} | "
                  f"{r['predictions']:,} ({', '.join(f'{k}: {v:,}' for k, v in r['statuses'].items())}) | "
                  f"{r['per_s']:.0f} | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} | "
                  f"{'verifies' if r['chain_ok'] else 'BROKEN'} ({r['rows_checked']:,} rows) | "
                  f"{r['answered_200_without_row']} | {r['auth_checks']} ({len(r['auth_broken'])}) |"
                  for r in data["serve"]]
        lines.append("")
    if data.get("failure"):
        lines += ["| a worker node killed during | killed after (s) | exit | outcome | partial files left | output "
                  "complete or absent |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['what']} | {r['killed_after_s']:.0f} | {r['exit']} | {r['outcome']} | "
                  f"{r['partial_files_left']} | {'yes' if r['output_complete_or_absent'] else 'NO'} |"
                  for r in data["failure"]]
        lines.append("")
    if data.get("distributed"):
        lines += ["| distributed training (PneumoniaMNIST, small CNN) | seed | workers | test AUROC (95% CI) "
                  "| seconds |",
                  "|---|---|---|---|---|"]
        lines += [f"| Ray Train, gloo | {r['seed']} | {r['workers']} | {_ci(r['test_auroc'])} | {r['seconds']:.0f} |"
                  for r in data["distributed"]]
        lines.append("")
        import statistics

        by = {w: [r["test_auroc"]["value"] for r in data["distributed"] if r["workers"] == w] for w in (1, 2)}
        if len(by[1]) >= 2 and by[2]:
            m1, s1, m2 = statistics.mean(by[1]), statistics.stdev(by[1]), statistics.mean(by[2])
            lines.append(f"- test AUROC over seeds: 1 worker {m1:.4f} ± {s1:.4f} (range {min(by[1]):.4f}-"
                         f"{max(by[1]):.4f}, {len(by[1])} seeds), 2 workers {m2:.4f}"
                         + (f" ± {statistics.stdev(by[2]):.4f}" if len(by[2]) >= 2 else "")
                         + f"; difference {m2 - m1:+.4f} = {(m2 - m1) / s1:+.1f} seed-to-seed sd of one worker")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Longitudinal records: PhysioNet 2012 in-hospital mortality, ours vs the published peers.

Protocol (the built-in task ``physionet2012-mortality``): train on set A (80% train / 20% validation, stratified,
seed 0), test on set B; the threshold is fixed on validation by the challenge's Event 1 rule (max of
min(sensitivity, PPV)) before set B is scored. For each learner: AUROC and AUPRC on set B with 95% bootstrap CIs,
the Event 1 score, and AUROC from the first 12 and 24 hours of every set-B stay (early warning). ``--cv`` adds
5x2 cross-validation of the LightGBM baseline over A+B. The mean of the learners' probabilities is reported as
its own row (an ensemble, benchmark only).

Published figures use other protocols (noted in the table): they frame the comparison, they are not paired.

The validation AUROC (set A's 20% held out from training) is shown beside each row: it is what a choice between
models may rest on; set B is only reported.

    nice -n 10 python benchmarks/ehr.py [--learners lightgbm,grud,transformer,ensemble] [--epochs 20] [--cv]

``ensemble`` (LightGBM on summaries + GRU-D, probabilities averaged) also reports its two members' own scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

PUBLISHED = [  # (model, AUROC, AUPRC, Event 1, protocol)
    ("mTAND (Shukla & Marlin 2021)", 0.858, None, None, "set A, 80/20"),
    ("GRU-D (as reported by Shukla & Marlin)", 0.818, None, None, "set A, 80/20"),
    ("ViTST (Li et al. 2023)", 0.851, 0.511, None, "P12: A+B+C, 5 splits 80/10/10"),
    ("Transformer (Raindrop paper)", 0.833, 0.479, None, "P12"),
    ("GRU-D (Raindrop paper)", 0.819, 0.461, None, "P12"),
    ("Challenge winner (Johnson et al. 2012)", None, None, 0.5353, "set C, Event 1"),
]
DEFAULT_OUT = "benchmarks/results/ehr.json"
TARGETS = "AUROC >= 0.89 and AUPRC >= 0.58 (best), recurrent >= 0.86; Event 1 >= 0.54"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", default="lightgbm,grud,transformer")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cv", action="store_true", help="also 5x2 CV of LightGBM over A+B")
    parser.add_argument("--reuse", action="store_true", help="reuse the scores of learners an earlier run with "
                        "the same --out saved (a learner's scores are saved as soon as it is trained)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--stream", action="store_true", help="measure the service's risk update per batch")
    parser.add_argument("--stream-model", help="a trained model folder (e.g. from `medai train "
                        "physionet2012-mortality`): measure only the stream endpoint with it, nothing trained; "
                        "results to --out (default benchmarks/results/ehr_stream.json), the README untouched")
    parser.add_argument("--stream-stays", type=int, default=20, help="set-B stays replayed hour by hour")
    parser.add_argument("--stream-db", help="the service's database (SQLAlchemy URL; a fresh schema is made and "
                        "dropped on PostgreSQL); default SQLite in a temporary MEDAI_HOME")
    parser.add_argument("--scale", type=int, default=0, help="replicate set A to this many stays: load, features, "
                        "train LightGBM; peak memory and time")
    args = parser.parse_args()
    os.environ.setdefault("MEDAI_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

    if args.stream_model:
        latency = stream_only(args)
        print(json.dumps(latency, indent=2))
        out = Path(args.out) if args.out != DEFAULT_OUT else Path(DEFAULT_OUT).with_name("ehr_stream.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": vars(args), "results": {"stream latency": latency}}, indent=2))
        return

    from medai.data.dataset import take
    from medai.evaluation.metrics import auprc, auroc
    from medai.modalities import get_modality
    from medai.road.options import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task = get_task("physionet2012-mortality")
    modality = get_modality("longitudinal")
    options = TrainOptions(seed=0, show_progress=False, extra={"epochs": args.epochs})
    started = time.time()
    dataset = modality.load_task_data(task, options)
    y = dataset.y.astype(int).to_numpy()
    parts = dataset.official_split
    X = {k: take(dataset.X, v) for k, v in parts.items()}
    print(f"data: {len(dataset)} stays in {time.time() - started:.0f}s; sizes "
          f"{ {k: len(v) for k, v in parts.items()} }", flush=True)
    target = infer_target(dataset.y.astype(str), task.target, kind="binary", positive_label="1")

    results, probabilities = {}, {}
    saved = Path(args.out).with_suffix(".scores")  # each learner's scores as soon as it is trained
    saved.mkdir(parents=True, exist_ok=True)
    for name in args.learners.split(","):
        file = saved / (name.replace(":", "_").replace(" ", "_") + ".npz")
        if args.reuse and file.with_suffix(".json").is_file():
            stored = np.load(file)
            for key in {k.split("|")[0] for k in stored.files}:
                probabilities[key] = {k.split("|")[1]: stored[k] for k in stored.files if k.startswith(key + "|")}
            results.update(json.loads(file.with_suffix(".json").read_text()))
            print(f"{name}: scores of an earlier run reused ({file})", flush=True)
            continue
        base, _, variant = name.partition(":")
        learner = modality.make_learner(base, target, options, task, dataset)
        if hasattr(learner, "threads"):
            learner.set_params(threads=args.threads)
        if variant == "48h-only":  # no training on windows cut at 12/24/36 h
            learner.set_params(augment_hours="")
        elif variant == "basic":  # the original summaries: no derived variables, SAPS-I or extended statistics
            learner.set_params(summaries="basic")
        elif variant == "standard":  # networks: inputs standardised as recorded (no log1p, no clipping)
            learner.set_params(scaling="standard")
        elif variant:
            raise SystemExit(f"unknown variant {variant!r} (48h-only, basic, standard)")
        t0, c0 = time.time(), time.process_time()
        learner = modality.fit(learner, X["train"], y[parts["train"]], X["val"], y[parts["val"]])
        fit_s, cpu_s = time.time() - t0, time.process_time() - c0
        inputs = {"val": X["val"], "test": X["test"], "12": X["test"].until(12), "24": X["test"].until(24)}
        probabilities[name] = {k: learner.predict_proba(v)[:, 1] for k, v in inputs.items()}
        results[name] = {"fit_seconds": round(fit_s, 1), "cpu_seconds": round(cpu_s, 1)}
        if hasattr(learner, "member_probabilities"):  # the ensemble: its members' own scores, same training
            members = {k: learner.member_probabilities(v) for k, v in inputs.items()}
            for j, member in enumerate(("lightgbm", "grud")):
                probabilities[f"{name} member: {member}"] = {k: m[j][:, 1] for k, m in members.items()}
                results[f"{name} member: {member}"] = {}
        mine = [k for k in probabilities if k == name or k.startswith(f"{name} member: ")]
        np.savez(file, **{f"{k}|{part}": v for k in mine for part, v in probabilities[k].items()})
        file.with_suffix(".json").write_text(json.dumps({k: results[k] for k in mine}))
        print(f"{name}: fitted in {fit_s:.0f}s", flush=True)
    score(probabilities, results, args.learners.split(","), y[parts["val"]], y[parts["test"]])
    if args.cv:
        from medai.data.splits import cv_splits

        folds = []
        for train_idx, test_idx in cv_splits(y, None, 5, 2, 0, stratify=True):
            learner = modality.make_learner("lightgbm", target, options, task, dataset)
            learner.fit(take(dataset.X, train_idx), y[train_idx])
            p = learner.predict_proba(take(dataset.X, test_idx))[:, 1]
            folds.append((auroc(y[test_idx], p), auprc(y[test_idx], p)))
        folds = np.array(folds)
        results["lightgbm 5x2 CV over A+B"] = {"auroc_mean": float(folds[:, 0].mean()),
                                               "auroc_sd": float(folds[:, 0].std(ddof=1)),
                                               "auprc_mean": float(folds[:, 1].mean()),
                                               "auprc_sd": float(folds[:, 1].std(ddof=1))}
        print(f"CV: {results['lightgbm 5x2 CV over A+B']}", flush=True)

    if args.stream:
        results["stream latency"] = stream_latency(dataset, parts, task, options, args)
        print(f"stream: {results['stream latency']}", flush=True)
    if args.scale:
        results["scale"] = scale(args.scale)
        print(f"scale: {results['scale']}", flush=True)
    markdown = render(results, args)
    print(markdown)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2, default=float))
    print("README updated" if update_readme("ehr", markdown) else "README has no results:ehr markers")


def score(probabilities: dict, results: dict, trained: list[str], y_val, y_test) -> None:
    """Set-B AUROC/AUPRC/Event 1 with bootstrap CIs, AUROC at 12 and 24 h, validation AUROC/AUPRC, per learner;
    with several learners also the mean of their probabilities."""
    from medai.evaluation.bootstrap import bootstrap_metrics
    from medai.evaluation.metrics import auprc, auroc
    from medai.evaluation.threshold import ThresholdRule, choose_threshold
    from medai.modalities.longitudinal.early_warning import event1

    if len(trained) > 1:
        probabilities[f"mean of {' + '.join(trained)}"] = {
            k: np.mean([probabilities[n][k] for n in trained], axis=0) for k in ("val", "test", "12", "24")}
        results[f"mean of {' + '.join(trained)}"] = {}
    for name, p in probabilities.items():
        threshold = choose_threshold(y_val, p["val"], ThresholdRule("se-ppv"))
        ci = bootstrap_metrics(lambda i, p=p, threshold=threshold: {"auroc": auroc(y_test[i], p["test"][i]),
                                               "auprc": auprc(y_test[i], p["test"][i]),
                                               "event1": event1(y_test[i], p["test"][i], threshold)},
                               y_test, n_boot=1000, seed=0)
        results[name].update(ci, threshold=threshold, auroc_12h=auroc(y_test, p["12"]),
                             auroc_24h=auroc(y_test, p["24"]), val_auroc=auroc(y_val, p["val"]),
                             val_auprc=auprc(y_val, p["val"]))


def stream_latency(dataset, parts, task, options, args) -> dict:
    """Trains the task's default model (fast settings), then :func:`measure_stream` on set-B stays."""
    import tempfile

    from medai.road.train import train

    with tempfile.TemporaryDirectory() as tmp:
        fast = options.__class__(seed=0, show_progress=False, cv="none", n_boot=50, extra=options.extra)
        result = train(task, dataset, Path(tmp) / "m", fast, _modality())
        frame = dataset.X.take(parts["test"][: args.stream_stays]).to_frame()
        return measure_stream(result.out, frame, args.stream_db)


def _modality():
    from medai.modalities import get_modality

    return get_modality("longitudinal")


def stream_only(args) -> dict:
    """The stream endpoint with an already trained model, on the first ``--stream-stays`` stays of set B."""
    from medai.modalities.longitudinal.reading import read_stays

    root = Path(os.environ["MEDAI_DATA_DIR"]) / "ehr" / "physionet2012"
    stays = read_stays(root / "set-b.tar.gz", 48.0).stays
    return measure_stream(Path(args.stream_model), stays.take(np.arange(args.stream_stays)).to_frame(),
                          args.stream_db)


def measure_stream(model_dir: Path, frame, db_url: str | None) -> dict:
    """p50/p95 of ``POST /v1/streams/{id}/observations``, in-process (FastAPI's TestClient): every stay of
    ``frame`` replayed hour by hour (one batch per hour with observations, scored at that hour), the model loaded
    before the first batch. With the CPU time per batch (all threads of this process: client and service), the
    machine's load average (1 min) before and after and its CPU count: on a shared machine the wall time is
    mostly waiting for a core."""
    import tempfile

    from fastapi.testclient import TestClient

    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDAI_HOME"] = tmp
        if db_url and db_url.startswith("postgresql"):
            from urllib.parse import quote

            from sqlalchemy import create_engine, text

            schema = f"medai_bench_{os.getpid()}"
            admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            db_url = f"{db_url}{'&' if '?' in db_url else '?'}options={quote(f'-csearch_path={schema}', safe='')}"
        try:
            from medai.registry import Registry
            from medai.serving.app import Settings, create_app

            settings = Settings(rate_limit=1_000_000, database_url=db_url, preload_models="p12")
            Registry(db_url).register(Path(model_dir), name="p12")
            app = create_app(settings)
            timings, sizes, cpu = [], [], []
            load_before = os.getloadavg()[0]
            with TestClient(app) as http:
                _, key = app.state.medai.keys.create("bench", "clinician")
                auth = {"Authorization": f"Bearer {key}"}
                for stay, rows in frame.groupby("stay_id"):
                    for h in range(1, 49):
                        batch = rows[(rows.time > h - 1) & (rows.time <= h)] if h > 1 else rows[rows.time <= 1]
                        if batch.empty:
                            continue
                        body = {"batch_id": f"{stay}-{h}", "model": "p12", "hour": float(h), "observations": [
                            {"time": float(r.time), "variable": r.variable, "value": float(r.value)}
                            for r in batch.itertuples()]}
                        t0, c0 = time.perf_counter(), time.process_time()
                        response = http.post(f"/v1/streams/s{stay}/observations", json=body, headers=auth)
                        timings.append(time.perf_counter() - t0)
                        cpu.append(time.process_time() - c0)  # every thread of this process (client and service)
                        sizes.append(len(batch))
                        assert response.status_code == 200, response.text
            load_after = os.getloadavg()[0]
        finally:
            if schema:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()
    ms = np.array(timings) * 1000
    return {"batches": len(ms), "stays": int(frame["stay_id"].nunique()), "p50_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean()),
            "cpu_p50_ms": float(np.median(cpu) * 1000), "cpu_p95_ms": float(np.percentile(cpu, 95) * 1000),
            "observations_per_batch_median": float(np.median(sizes)),
            "database": "postgresql" if schema else "sqlite", "load_average_1min": [load_before, load_after],
            "cpus": os.cpu_count()}


def scale(n: int) -> dict:
    """Set A replicated to ``n`` stays (ids remapped) as one long Parquet table, read back lazily, summarised and
    used to train the LightGBM baseline: wall time of each step and the peak resident memory of this process."""
    import resource
    import tempfile

    import polars as pl

    from medai.modalities.longitudinal.learners import SummaryBoosting
    from medai.modalities.longitudinal.reading import read_challenge, read_long_table

    root = Path(os.environ["MEDAI_DATA_DIR"]) / "ehr" / "physionet2012"
    base = read_challenge(root / "set-a.tar.gz").stays.to_frame()
    copies = int(np.ceil(n / 4000))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        frame = pl.from_pandas(base)
        tables = [frame.with_columns(stay_id=pl.lit(f"r{k}-") + pl.col("stay_id")) for k in range(copies)]
        path = Path(tmp) / "events.parquet"
        pl.concat(tables).write_parquet(path)
        del tables, frame
        out["rows"] = int(len(base) * copies)
        out["write_s"] = round(time.time() - t0, 1)
        t0 = time.time()
        read = read_long_table(path, window_hours=48.0)
        out["read_s"] = round(time.time() - t0, 1)
        stays = read.stays.take(np.arange(min(n, len(read.stays))))
        out["stays"] = len(stays)
        rng = np.random.default_rng(0)
        y = (rng.random(len(stays)) < 0.14).astype(int)  # the outcome is not the point here: memory and time are
        t0 = time.time()
        SummaryBoosting(n_estimators=200, augment_hours="").fit(stays, y)
        out["train_s"] = round(time.time() - t0, 1)
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)
    return out


def render(results: dict, args) -> str:
    def ci(entry):
        return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})" if entry else "-"

    lines = [f"PhysioNet 2012 in-hospital mortality: trained on set A, tested on set B (4,000 stays); networks "
             f"{args.epochs} epochs at most, early stopping on validation AUROC. Targets: {TARGETS}.", "",
             "| model | AUROC (95% CI) | AUPRC (95% CI) | Event 1 | AUROC 12 h | AUROC 24 h | val AUROC (set A) "
             "| fit (s) | protocol |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "auroc" not in r:
            continue
        lines.append(f"| ours: {name} | {ci(r['auroc'])} | {ci(r['auprc'])} | {ci(r['event1'])} | "
                     f"{r['auroc_12h']:.3f} | {r['auroc_24h']:.3f} | {r['val_auroc']:.3f} | "
                     f"{r.get('fit_seconds', '-')} | A -> B |")
    cv = results.get("lightgbm 5x2 CV over A+B")
    if cv:
        lines.append(f"| ours: lightgbm, 5x2 CV | {cv['auroc_mean']:.3f} +/- {cv['auroc_sd']:.3f} | "
                     f"{cv['auprc_mean']:.3f} +/- {cv['auprc_sd']:.3f} | - | - | - | - | - | A+B, 5x2 CV |")
    for name, au, pr, e1, protocol in PUBLISHED:
        lines.append(f"| {name} | {au if au else '-'} | {pr if pr else '-'} | {e1 if e1 else '-'} | - | - | - | - | "
                     f"{protocol} |")
    stream = results.get("stream latency")
    if stream:
        lines += ["", f"Service streams: risk update per hourly batch p50 {stream['p50_ms']:.1f} ms, p95 "
                  f"{stream['p95_ms']:.1f} ms over {stream['batches']} batches (in-process, {stream['database']}; "
                  f"load average {stream['load_average_1min'][0]:.1f} on {stream['cpus']} CPUs; target p50 < 50 ms)."]
    big = results.get("scale")
    if big:
        lines += ["", f"Scale: set A replicated to {big['stays']:,} stays ({big['rows']:,} observations) read from "
                  f"Parquet in {big['read_s']} s, LightGBM (200 trees) trained in {big['train_s']} s, peak memory "
                  f"{big['peak_rss_gb']} GB (target <= 8 GB)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

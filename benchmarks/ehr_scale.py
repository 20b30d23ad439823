"""Longitudinal records at scale: the MIMIC-IV demo replicated to 100,000 patients, loaded, turned into the ICU
mortality task and used to train the LightGBM baseline, with the peak memory and the time of each step.

The demo's four tables the task reads (``icu/icustays``, ``hosp/admissions``, ``hosp/d_labitems``,
``hosp/labevents``) are written ``--copies`` times (default 1,000: 100 x 1,000 = 100,000 patients, 140,000 ICU
stays, ~108 M lab rows) with every identifier remapped (``subject_id``, ``hadm_id``, ``stay_id``,
``labevent_id``, ``specimen_id`` + copy x 10^9), all columns kept, as plain CSV (what PhysioNet ships, un-gzipped).
A separate process then reads them with the same code as the ``mimic4demo-icu-mortality`` task
(:func:`medai.modalities.longitudinal.mimic.icu_stays`: lazy polars scans of only the needed columns), builds the
task's dataset (labels, patient groups), splits by patient and trains the baseline learner; its peak resident
memory is that process's ``ru_maxrss`` (target <= 8 GB). The outcome of a replica is its original's, so the
figures say nothing about accuracy: memory and time are the point.

    nice -n 10 python benchmarks/ehr_scale.py [--copies 1000] [--trees 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OFFSET = 10 ** 9
TABLES = {"icu/icustays": ("subject_id", "hadm_id", "stay_id"), "hosp/admissions": ("subject_id", "hadm_id"),
          "hosp/labevents": ("labevent_id", "subject_id", "hadm_id", "specimen_id"), "hosp/d_labitems": ()}


def replicate(source: Path, target: Path, copies: int) -> dict:
    """Write ``copies`` id-remapped copies of the task's tables as CSV under ``target``; rows written."""
    import polars as pl

    rows = {}
    for name, id_columns in TABLES.items():
        path = next(p for p in (source / f"{name}.csv.gz", source / f"{name}.csv") if p.is_file())
        table = pl.read_csv(path, infer_schema_length=0)  # every column as text: written back unchanged
        out = target / f"{name}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not id_columns:  # a dictionary: one copy
            table.write_csv(out)
            rows[name] = table.height
            continue
        numeric = {c: pl.col(c).cast(pl.Int64) for c in id_columns}
        with out.open("wb") as handle:
            for k in range(copies):
                copy = table.with_columns(**{c: (e + k * OFFSET).cast(pl.Utf8) for c, e in numeric.items()})
                copy.write_csv(handle, include_header=k == 0)
        rows[name] = table.height * copies
    return rows


def child(root: str, trees: int) -> None:
    """Runs in its own process: load, build the task, split by patient, train; prints JSON timings."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import GroupShuffleSplit

    from medai.modalities import get_modality
    from medai.modalities.longitudinal.learners import SummaryBoosting
    from medai.modalities.longitudinal.mimic import icu_stays
    from medai.tasks import get_task

    task = get_task("mimic4demo-icu-mortality")
    modality = get_modality("longitudinal")
    out = {}
    t0 = time.time()
    read, table = icu_stays(Path(root), float(task.options["window_hours"]))
    out["load_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    y = table[task.target].reindex(pd.Index(read.stays.ids)).reset_index(drop=True)
    dataset = modality.dataset(read, y, task.target, table, source="replicated MIMIC-IV demo",
                               labels="admissions.hospital_expire_flag", group_column="subject_id")
    out["task_s"] = round(time.time() - t0, 1)
    out["stays"] = len(dataset.X)
    out["patients"] = int(pd.Series(dataset.groups).nunique())
    out["observations"] = int(len(dataset.X.time))
    out["variables"] = len(dataset.X.variables)
    train, test = next(GroupShuffleSplit(1, test_size=0.2, random_state=0).split(
        np.zeros(len(dataset.X)), groups=dataset.groups))
    assert not set(dataset.groups[train]) & set(dataset.groups[test])
    labels = dataset.y.astype(int).to_numpy()
    t0 = time.time()
    learner = SummaryBoosting(n_estimators=trees, augment_hours="").fit(dataset.X.take(train), labels[train])
    out["train_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    learner.predict_proba(dataset.X.take(test))
    out["predict_s"] = round(time.time() - t0, 1)
    out["train_stays"], out["test_stays"] = int(len(train)), int(len(test))
    out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=1000)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--keep", help="write the replica here (and keep it) instead of a temporary folder")
    parser.add_argument("--out", default="benchmarks/results/ehr_scale.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trees)
        return
    if args.copies < 1:
        parser.error("--copies must be at least 1")
    data = Path(os.environ.get("MEDAI_DATA_DIR", HERE.parents[1] / "shared" / "data"))
    source = data / "ehr" / "mimic-iv-clinical-database-demo-2.2"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        t0 = time.time()
        rows = replicate(source, root, args.copies)
        write_s = round(time.time() - t0, 1)
        size_gb = round(sum(p.stat().st_size for p in root.rglob("*.csv")) / 1024 ** 3, 2)
        print(f"replica: {rows} rows, {size_gb} GB in {write_s} s", flush=True)
        done = subprocess.run([sys.executable, __file__, "--child", str(root), "--trees", str(args.trees)],
                              capture_output=True, text=True, env={**os.environ, "MEDAI_DATA_DIR": str(data)})
        if done.returncode:
            raise SystemExit(f"the load/train process failed:\n{done.stderr[-4000:]}")
        result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    result.update(copies=args.copies, rows=rows, csv_gb=size_gb, write_s=write_s,
                  load_average=[round(x, 1) for x in os.getloadavg()])
    markdown = render(result, args)
    print(markdown)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    from readme_table import update_readme

    print("README updated" if update_readme("ehr-scale", markdown) else "README has no results:ehr-scale markers")


def render(r: dict, args) -> str:
    return (f"Scale (`python benchmarks/ehr_scale.py --copies {r['copies']} --trees {args.trees}`): the MIMIC-IV demo "
            f"replicated {r['copies']:,} times with remapped ids - {r['patients']:,} patients, {r['stays']:,} ICU "
            f"stays, {r['rows']['hosp/labevents']:,} lab rows ({r['csv_gb']} GB of CSV). Loaded and windowed "
            f"(first 24 h: {r['observations']:,} results of {r['variables']} tests) in {r['load_s']} s, task built "
            f"in {r['task_s']} s, LightGBM ({args.trees} trees, {r['train_stays']:,} stays of 80% of the patients) "
            f"trained in {r['train_s']} s and {r['test_stays']:,} stays scored in {r['predict_s']} s; peak memory "
            f"of that process {r['peak_rss_gb']} GB (target <= 8 GB). Load average during the run "
            f"{'/'.join(str(x) for x in r['load_average'])} on 2 cores.")


if __name__ == "__main__":
    main()

"""Image-diagnosis benchmark on the official MedMNIST v2 splits, on this machine's CPU.

For each task: train with the built-in recipe (several seeds), report test AUROC and accuracy (MedMNIST
protocol: argmax) as mean ± sd next to the MedMNIST v2 baselines, plus the accuracy at the threshold chosen
on validation data. Then single-image latency and batch throughput for eager torch and ONNX Runtime, and
denoising PSNR/SSIM at sigma = 0.1. Writes the tables into the README.

Usage: python benchmarks/imaging.py [--seeds 3] [--tasks pneumonia-xray,breast-ultrasound,adrenal-ct-3d]
                                    [--seed-list 0,1] [--threads N] [--skip-speed] [--skip-denoise] [--no-readme]

Each part's results are kept in ``--out`` (``<task>.json``, ``speed.json``, ``denoise.json``) and the tables
are built from every part found there, so parts can be run at different times (or side by side with
``--threads 1``) and the README table still shows all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

from medai.modalities import get_modality  # noqa: E402
from medai.road import TrainOptions, load_model, train  # noqa: E402
from medai.tasks import get_task  # noqa: E402

# Figures quoted by the project's issue from the MedMNIST v2 paper (Yang et al. 2023, Sci Data 10:41).
PUBLISHED = {
    "pneumonia-xray": [("MedMNIST v2 best CNN: ResNet-50 (224)", 0.962, 0.884),
                       ("Google AutoML Vision", 0.991, 0.946)],
    "breast-ultrasound": [("MedMNIST v2 best CNN: ResNet-18 (28)", 0.901, 0.863)],
    "adrenal-ct-3d": [],
}
TARGETS = {"pneumonia-xray": (0.98, 0.92), "breast-ultrasound": (0.92, 0.88), "adrenal-ct-3d": (0.86, None)}


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def task_data(task_name: str):
    return get_modality("imaging").load_task_data(get_task(task_name), TrainOptions())


def train_runs(task_name: str, seeds: list[int], root: Path, threads: int | None) -> None:
    task = get_task(task_name)
    data = task_data(task_name)
    for seed in seeds:
        start = time.perf_counter()
        extra = {"threads": threads} if threads else {}
        result = train(task, data, root / f"{task_name}-s{seed}",
                       TrainOptions(seed=seed, show_progress=False, extra=extra))
        minutes = (time.perf_counter() - start) / 60
        m = result.metrics
        clinical = m["test_at_validation_threshold"]["metrics"]
        conformal = m["conformal"]
        run = {"seed": seed, "auroc": m["test"]["auroc"]["value"], "accuracy": m["test"]["accuracy"]["value"],
               "clinical_accuracy": clinical["accuracy"]["value"],
               "clinical_threshold": m["test_at_validation_threshold"]["threshold"],
               "prevalence": m["split"]["prevalence"], "minutes": minutes,
               "network": m["learner"], "epochs": m["training"]["epochs_run"], "dir": str(result.out),
               "threads": threads, "conformal_coverage": conformal["coverage"]["value"],
               "conformal_set_size": conformal["mean_set_size"]["value"]}
        save_run(root, task_name, run)
        print(f"{task_name} seed {seed}: AUROC {run['auroc']:.4f} ACC {run['accuracy']:.4f} "
              f"(validation-threshold ACC {run['clinical_accuracy']:.4f}) conformal coverage "
              f"{run['conformal_coverage']:.3f} {minutes:.1f} min", flush=True)


def speed(model_dir: str) -> dict[str, float]:
    from medai.modalities.imaging.onnx_runtime import OnnxImageClassifier, export_onnx

    clf = load_model(model_dir).learner
    data = task_data("pneumonia-xray")
    X = data.X[data.official_split["test"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(clf, Path(tmp) / "m.onnx")
        onnx = OnnxImageClassifier(path)
        out = {"max_abs_diff": float(np.abs(onnx.predict_proba(X[:64]) - clf.predict_proba(X[:64])).max())}
        for name, predict in (("torch", clf.predict_proba), ("onnx", onnx.predict_proba)):
            for _ in range(5):
                predict(X[:1])
            times = []
            for i in range(200):
                t = time.perf_counter()
                predict(X[i % len(X): i % len(X) + 1])
                times.append(time.perf_counter() - t)
            out[f"{name}_latency_ms_p50"] = 1000 * float(np.median(times))
            t = time.perf_counter()
            predict(X)
            out[f"{name}_images_per_s"] = len(X) / (time.perf_counter() - t)
    return out


def denoise_table(epochs: int) -> dict:
    from medai.modalities.imaging.enhance import train_denoiser

    with tempfile.TemporaryDirectory() as tmp:
        return train_denoiser("pneumoniamnist", Path(tmp) / "den", sigma=0.1, epochs=epochs, progress=False)


def load_part(root: Path, name: str):
    path = root / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def save_part(root: Path, name: str, value) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.json").write_text(json.dumps(value, indent=2))


def save_run(root: Path, task_name: str, run: dict) -> None:
    """Add one seed's run to ``<task>.json`` (replacing an earlier run of that seed); safe for processes
    training other seeds of the same task side by side."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = [r for r in load_part(root, task_name) or [] if r["seed"] != run["seed"]]
        save_part(root, task_name, sorted(runs + [run], key=lambda r: r["seed"]))


def accuracy_table(results: dict[str, list[dict]]) -> str:
    lines = ["| task | model | seeds | test AUROC | test ACC (argmax) | ACC at validation threshold | "
             "train min/seed | target |", "|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        target = TARGETS[name]
        lines.append(
            f"| {name} | MedAI {runs[0]['network']} | {len(runs)} | {mean_sd([r['auroc'] for r in runs])} | "
            f"{mean_sd([r['accuracy'] for r in runs])} | {mean_sd([r['clinical_accuracy'] for r in runs])} | "
            f"{statistics.mean(r['minutes'] for r in runs):.1f} | AUROC ≥ {target[0]}"
            + (f", ACC ≥ {target[1]}" if target[1] else "") + " |")
        for label, auc, acc in PUBLISHED[name]:
            lines.append(f"| {name} | {label} (published) | | {auc:.3f} | {acc:.3f} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3, help="train seeds 0 .. N-1")
    parser.add_argument("--seed-list", default=None, help="comma-separated seeds to train instead (e.g. 1,2)")
    parser.add_argument("--tasks", default="pneumonia-xray,breast-ultrasound,adrenal-ct-3d",
                        help="comma-separated tasks to train ('' for none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per training (default: torch's)")
    parser.add_argument("--denoise-epochs", type=int, default=None)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-denoise", action="store_true")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--out", default="runs/bench-imaging")
    args = parser.parse_args()
    root = Path(args.out)
    seeds = [int(v) for v in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    for name in filter(None, args.tasks.split(",")):
        train_runs(name, seeds, root, args.threads)
    results = {name: runs for name in TARGETS if (runs := load_part(root, name))}

    table = accuracy_table(results)
    print("\n" + table)
    for name, runs in results.items():
        prevalence = runs[0]["prevalence"]
        print(f"{name}: positive rate validation {prevalence['val']:.3f} vs test {prevalence['test']:.3f}")

    sections = [table]
    if not args.skip_speed and "pneumonia-xray" in results:
        save_part(root, "speed", speed(results["pneumonia-xray"][0]["dir"]))
    s = load_part(root, "speed")
    if s:
        speed_table = "\n".join([
            "| runtime | single-image latency p50 (ms) | batch throughput (images/s, 624 test images) |",
            "|---|---|---|",
            f"| eager torch | {s['torch_latency_ms_p50']:.2f} | {s['torch_images_per_s']:.0f} |",
            f"| ONNX Runtime | {s['onnx_latency_ms_p50']:.2f} | {s['onnx_images_per_s']:.0f} |",
            f"\nmax |ONNX - torch| on 64 test images: {s['max_abs_diff']:.1e}",
        ])
        print("\n" + speed_table)
        sections.append(speed_table)
    if not args.skip_denoise:
        save_part(root, "denoise", denoise_table(args.denoise_epochs or 10))
    metrics = load_part(root, "denoise")
    if metrics:
        rows = ["| PneumoniaMNIST test, sigma = 0.1 | PSNR (dB) | gain over noisy (dB) | SSIM |", "|---|---|---|---|"]
        for method, entry in metrics["results"].items():
            rows.append(f"| {method} | {entry['psnr']:.2f} | {entry['psnr_gain_db']:+.2f} | {entry['ssim']:.3f} |")
        denoise = "\n".join(rows)
        print("\n" + denoise)
        sections.append(denoise)
    if not args.no_readme:
        ok = update_readme("imaging", "\n\n".join(sections))
        print("README updated" if ok else "README has no results:imaging markers")


if __name__ == "__main__":
    main()

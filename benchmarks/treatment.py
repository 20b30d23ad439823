"""Treatment benchmark (issue 12): ours vs peers on the same splits, one run.

- IHDP (10 replications, CEVAE 63/27/10 train/validation/test per replication, split seed = replication):
  out-of-sample sqrt(PEHE) and ATE error on the 10% test patients for ours (``auto``: T-learner with each arm's
  outcome model chosen by cross-validation), the plain T-learner with gradient boosting and EconML's causal forest,
  beside the published figures (Shalit et al. 2017; Louizos et al. 2017).
- Survival (WHAS500, GBSG2, veterans; 5 seeds, 60/20/20 split stratified by event): test Harrell C-index of ours
  (``auto``) vs Cox and the random survival forest fitted on the same training records, and for all three Uno's
  C-index, the integrated Brier score, and time-dependent AUC and Brier score at the task's horizons.
- ACTG 175 (4 arms, CD4 at 20 weeks): the learned policy's doubly robust value on the held-out patients vs each
  single arm, through the road (``medai train actg175-cd4``).

    MEDAI_DATA_DIR=../shared/data nice -n 10 .venv/bin/python benchmarks/treatment.py [--quick] [--only SECTION]

A full run of a section (not ``--quick``) writes its block of the README's ``results:treatment`` section.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.simplefilter("ignore")

sys.path.insert(0, str(Path(__file__).resolve().parent))

LINES: list[str] = []


def say(text: str = "") -> None:
    """Print a line and keep it for the README block of the section."""
    print(text, flush=True)
    LINES.extend(str(text).split("\n"))


def write_block(section: str, command: str) -> None:
    import fcntl

    from readme_table import update_readme

    body = "\n".join(LINES).strip("\n")
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    with open(Path(__file__).with_suffix(".lock"), "w") as lock:  # sections may run as parallel processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        ok = update_readme(f"treatment-{section}", f"Measured {stamp}, `{command}`:\n\n```\n{body}\n```")
    print(f"README block treatment-{section} {'written' if ok else 'NOT FOUND (markers missing)'}")
    LINES.clear()


PUBLISHED_IHDP = {"T-learner (GB), published": 1.7, "TARNet (Shalit 2017)": 0.95, "CFR-Wass (Shalit 2017)": 0.76}


def mean_ci(values) -> str:
    values = np.asarray(values, dtype=float)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ({values.mean() - half:.3f}-{values.mean() + half:.3f})"


def paired(ours, peer) -> str:
    """Mean per-seed difference with a 95% t interval over the seeds (the seeds share the data set, so this is a
    statement about these splits, not about new patients)."""
    from scipy import stats

    diff = np.asarray(ours, dtype=float) - np.asarray(peer, dtype=float)
    if len(diff) < 2:
        return f"{diff.mean():+.3f}"
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    verdict = "significant" if abs(diff.mean()) > half else "not significant"
    return f"{diff.mean():+.3f} ({diff.mean() - half:+.3f} to {diff.mean() + half:+.3f}), {verdict} at 5%"


def ihdp(replications: list[int]) -> None:

    from medai.data.registry import get_dataset
    from medai.data.splits import train_val_test_split
    from medai.modalities.treatment.effects import EffectLearner
    from medai.tasks import get_task

    results = {"ours (auto)": [], "T-learner (LightGBM)": [], "causal forest (EconML)": []}
    chosen = {}
    for k in replications:
        task = get_task(f"ihdp-{k}")
        frame = get_dataset(task.dataset).load()
        features = [f"x{i}" for i in range(1, 26)]
        X, arms = frame[features], frame["treatment"].to_numpy()
        y = np.column_stack([arms, frame["y_factual"], frame["true_effect"]]).astype(float)
        split = train_val_test_split(arms, val_size=0.27, test_size=0.10, seed=k)
        train, test = split.train, split.test
        truth = frame["true_effect"].to_numpy()[test]
        learners = {
            "ours (auto)": EffectLearner(learner="auto", n_bootstrap=0, seed=k),
            "T-learner (LightGBM)": EffectLearner(learner="t", base="gbm", n_bootstrap=0, seed=k),
            "causal forest (EconML)": EffectLearner(learner="causal-forest", base="gbm", seed=k),
        }
        line = []
        for name, learner in learners.items():
            start = time.time()
            learner.fit(X.iloc[train], y[train])
            predicted = learner.predict(X.iloc[test])
            pehe = float(np.sqrt(np.mean((predicted - truth) ** 2)))
            error = float(abs(predicted.mean() - truth.mean()))
            results[name].append((pehe, error))
            if name == "ours (auto)":
                chosen[k] = "/".join(learner.bases_)
            line.append(f"{name} {pehe:.2f}/{error:.2f} ({time.time() - start:.0f}s)")
        say(f"IHDP {k}: " + "; ".join(line))
    say(f"\nIHDP, {len(replications)} replications, out-of-sample (test 10%), mean (95% CI over replications)")
    say(f"{'method':32s} {'sqrt(PEHE)':>24s} {'median':>7s} {'ATE error':>24s}")
    for name, rows in results.items():
        rows = np.asarray(rows)
        say(f"{name:32s} {mean_ci(rows[:, 0]):>24s} {np.median(rows[:, 0]):>7.3f} {mean_ci(rows[:, 1]):>24s}")
    for name, value in PUBLISHED_IHDP.items():
        say(f"{name:32s} {value:>24.2f}")
    ours = np.asarray(results["ours (auto)"]).mean(axis=0)
    say(f"acceptance: sqrt(PEHE) <= 0.90: {'met' if ours[0] <= 0.90 else 'MISSED'} ({ours[0]:.3f}); "
        f"ATE error <= 0.20: {'met' if ours[1] <= 0.20 else 'MISSED'} ({ours[1]:.3f})")
    say(f"ours: outcome model per arm (control/treated), chosen by 5-fold CV on the training part: {chosen}")


def survival(seeds: list[int]) -> None:
    from medai.data.splits import train_val_test_split
    from medai.evaluation.kinds import evaluator_for
    from medai.modalities import get_modality
    from medai.modalities.treatment.survival import SurvivalLearner
    from medai.road import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    evaluator = evaluator_for("survival")
    for name in ("whas500", "gbsg2", "veterans"):
        task = get_task(f"{name}-survival")
        dataset = get_modality("treatment").load_task_data(task, TrainOptions(show_progress=False))
        target = infer_target(dataset.y, dataset.target_column, kind="survival", fields=dataset.target_fields)
        y = target.encode(dataset.y)
        labels = {"ours (auto)": "auto", "Cox": "cox", "random survival forest": "rsf"}
        metrics: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
        picked = []
        for seed in seeds:
            split = train_val_test_split(y[:, 1].astype(int), seed=seed)
            X_train, X_test = dataset.X.iloc[split.train], dataset.X.iloc[split.test]
            for label, learner in labels.items():
                model = SurvivalLearner(learner=learner, seed=seed).fit(X_train, y[split.train])
                s = evaluator.scores(model, X_test, target)
                decision = evaluator.decide(None, None, target, None, {})
                for key, value in evaluator.point_metrics(y[split.test], s, decision).items():
                    metrics[label].setdefault(key, []).append(value)
                if label == "ours (auto)":
                    picked.append(model.chosen_learner_ + "".join(
                        f" {k} {v:.3f}+-{model.selection_se_[k]:.3f}" for k, v in model.selection_scores_.items()))
        say(f"\n{name}: test C-index over {len(seeds)} seeds, mean (95% CI over seeds); per seed")
        for label in labels:
            values = metrics[label]["c_index"]
            say(f"  {label:28s} {mean_ci(values)}   " + " ".join(f"{v:.3f}" for v in values))
        best_peer = max(np.mean(metrics["Cox"]["c_index"]), np.mean(metrics["random survival forest"]["c_index"]))
        ours = np.mean(metrics["ours (auto)"]["c_index"])
        say(f"  acceptance (ours >= best of Cox and RSF): {'met' if ours >= best_peer else 'MISSED'} "
            f"({ours:.3f} vs {best_peer:.3f})")
        for peer in ("Cox", "random survival forest"):
            gap = paired(metrics["ours (auto)"]["c_index"], metrics[peer]["c_index"])
            say(f"  ours - {peer}, paired over seeds: {gap}")
        say(f"  ours: learner per seed: {'; '.join(picked)}")
        say(f"  {'metric (test, mean over seeds, 95% CI)':30s}" + "".join(f"{label[:22]:>24s}" for label in labels))
        for key in metrics["ours (auto)"]:
            if key == "c_index":
                continue
            cells = []
            for label in labels:
                finite = [v for v in metrics[label].get(key, []) if np.isfinite(v)]
                cells.append(mean_ci(finite) if finite else "n/a")
            say(f"  {key:30s}" + "".join(f"{cell:>24s}" for cell in cells))


def actg(seed: int) -> None:
    from medai.road import TrainOptions, train_task

    result = train_task("actg175-cd4", f"/tmp/medai-bench-actg-{seed}", TrainOptions(seed=seed, show_progress=False,
                                                                                      n_boot=500))
    policy = result.metrics["policy"]
    say("ACTG 175 (CD4 at 20 weeks, higher is better), held-out test patients, doubly robust value (95% CI)")
    entry = policy["learned"]
    say(f"  {'learned policy':22s} {entry['value']:.1f} ({entry['ci_low']:.1f}-{entry['ci_high']:.1f})")
    for arm, entry in policy["arms"].items():
        say(f"  {'everyone: ' + arm:22s} {entry['value']:.1f} ({entry['ci_low']:.1f}-{entry['ci_high']:.1f})")
    diff = policy["learned_minus_best_arm"]
    say(f"  learned - best arm ({policy['best_arm']}): {diff['value']:.1f} ({diff['ci_low']:.1f} to "
        f"{diff['ci_high']:.1f}); {'significant' if policy['significant'] else 'not significant'} at 5%")
    best = max(e["value"] for e in policy["arms"].values())
    say(f"  acceptance (learned >= best single arm): {'met' if policy['learned']['value'] >= best else 'MISSED'}")
    say(f"  share given each arm: {policy['share_recommended']}")
    default = result.metrics.get("policy_default_arm")
    if default:
        say(f"  default arm: {default['arm']} ({default['how']}: "
            + ", ".join(f"{arm} {v:.1f}" for arm, v in zip(policy["arms"], default["values"], strict=True)) + ")")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 IHDP replications, 2 survival seeds")
    parser.add_argument("--only", choices=("ihdp", "survival", "actg"), default=None)
    parser.add_argument("--no-readme", action="store_true", help="do not write the README blocks")
    args = parser.parse_args()
    write = not (args.quick or args.no_readme)
    command = "MEDAI_DATA_DIR=../shared/data nice -n 10 .venv/bin/python benchmarks/treatment.py"
    if args.only in (None, "ihdp"):
        ihdp(list(range(1, 4 if args.quick else 11)))
        if write:
            write_block("ihdp", command + " --only ihdp")
    if args.only in (None, "survival"):
        survival(list(range(2 if args.quick else 5)))
        if write:
            write_block("survival", command + " --only survival")
    if args.only in (None, "actg"):
        actg(0)
        if write:
            write_block("actg", command + " --only actg")


if __name__ == "__main__":
    main()

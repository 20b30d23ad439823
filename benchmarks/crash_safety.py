"""Crash safety: SIGKILL in the middle of model registration, artifact writes, job execution, audit appends
and a loaded server, many times each, and check that nothing stored is lost or corrupted.

Each phase runs a child process that loops over one kind of write, kills it (SIGKILL, no chance to clean up)
at a random moment once it is busy, and then checks what a restarted service would see:

- ``register``: registrations in a loop -> every registry row's artifact verifies against its checksums
  (0 corrupted entries), no listed version is half-written, and after the start-up cleanup no staging
  directory or never-registered copy is left (orphans);
- ``artifact``: an artifact directory rewritten in a loop (two versions of ~8 MB) -> the directory is always
  one complete version (verify_artifact passes), leftovers are removed by the next writer;
- ``job``: a job worker predicting CSV jobs -> after restarts every job ends ``done`` (complete result, one
  row per input row) or ``failed`` with a clean message, none stays ``running``, inputs are deleted;
- ``audit``: 8 threads appending audit rows with group commit, printing each row's seq once it is durable
  -> ``audit verify`` passes after every kill and every acknowledged row is there;
- ``serve``: ``medai serve`` under load (8 connections, unique bodies) killed as a whole -> every request
  that got its answer has its audit row, and the chain verifies.

    python benchmarks/crash_safety.py [--kills 100] [--serve-kills 10] [--real-job-kills 10]
                                      [--phases register,artifact,job,audit,serve]

The ``job`` phase kills workers running a light stand-in model (``--kills`` times: the job machinery — claim,
lease, atomic result, input deletion — is what is under test, and each restart then costs no scikit-learn
import) and then workers running the real model through the service's own job runner (``--real-job-kills``).

Prints a table and writes benchmarks/results/crash_safety.json; exit status 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import PY, offline_env  # noqa: E402

PHASES = ("register", "artifact", "job", "audit", "serve")


# ------------------------------------------------------------------------------------------------- children


def child_register(home: Path, artifact: str) -> None:
    from medai.registry import Registry

    registry = Registry()
    print("ready", flush=True)
    while True:
        registry.register(artifact, name="crash")


def child_artifact(home: Path, target: str) -> None:
    from medai.models.artifact import dumps, write_artifact

    rng = random.Random(os.getpid())
    versions = []
    for v in (1, 2):
        blob = bytes([v]) * 4_000_000
        versions.append({"model.json": dumps({"version": v}), "weights.bin": blob, "more.bin": blob[::-1]})
    print("ready", flush=True)
    while True:
        write_artifact(target, versions[rng.randrange(2)])


class LightModel:
    """Stands in for a model in the short (test) version: reads the CSV, no scikit-learn/torch import."""

    def predict_csv(self, path: Path) -> bytes:
        import pandas as pd

        frame = pd.read_csv(path)
        time.sleep(0.002 * len(frame) / 100)  # some work per row, so kills land mid-job
        first = frame.iloc[:, 0]
        return pd.DataFrame({"probability": first / (1 + first.abs()), "label": "x"}).to_csv(index=False).encode()


def child_job(home: Path, model_dir: str) -> None:
    from types import SimpleNamespace

    from medai.serving.jobs import JobStore

    if model_dir == "light":
        light = LightModel()

        def predict(row, folder):
            return light.predict_csv(folder / "input.csv")
    else:  # the service's own job runner over the real model
        from medai.road import load_model
        from medai.serving.routers.jobs import run_job

        model = load_model(model_dir)
        state = SimpleNamespace(registry=SimpleNamespace(get=lambda name, version: None),
                                load_model=lambda record: model)

        def predict(row, folder):
            return run_job(state, row, folder)

    store = JobStore(lease_s=1.0, max_attempts=1000)
    print("ready", flush=True)
    while True:
        if store.run_one(predict) is None:
            time.sleep(0.05)


def child_audit(home: Path) -> None:
    from medai.privacy.audit import AuditLog, BackgroundAuditWriter

    writer = BackgroundAuditWriter(AuditLog())
    lock = threading.Lock()

    def loop(t: int) -> None:
        i = 0
        while True:
            i += 1
            seq = writer.submit("predict", wait=True, timeout=60, key_id=f"{t:012x}", detail={"t": t, "i": i})
            with lock:  # acknowledged = durable: only now would a request be answered
                sys.stdout.write(f"{seq}\n")
                sys.stdout.flush()

    print("ready", flush=True)
    for t in range(8):
        threading.Thread(target=loop, args=(t,), daemon=True).start()
    threading.Event().wait()


CHILDREN = {"register": child_register, "artifact": child_artifact, "job": child_job, "audit": child_audit}


# ------------------------------------------------------------------------------------------------- parent


def spawn(phase: str, home: Path, arg: str | None = None) -> subprocess.Popen:
    cmd = [PY, __file__, "--child", phase, "--home", str(home)] + ([arg] if arg else [])
    return subprocess.Popen(cmd, env=offline_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after(proc: subprocess.Popen, low: float, high: float, rng: random.Random, lines: list[str] | None = None):
    """Wait for the child's 'ready', SIGKILL it after a random delay; the lines it printed after 'ready'."""
    ready = proc.stdout.readline()
    if ready.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"child did not start: {ready!r} {proc.stderr.read()[-2000:]}")
    collected: list[str] = []
    reader = None
    if lines is not None:
        reader = threading.Thread(target=lambda: collected.extend(proc.stdout), daemon=True)
        reader.start()
    time.sleep(rng.uniform(low, high))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if reader is not None:
        reader.join(10)
        lines.extend(collected)
    proc.stdout.close()
    proc.stderr.close()
    return collected


def phase_register(home: Path, kills: int, rng: random.Random, artifact: Path) -> dict:
    from medai import db
    from medai.models.artifact import verify_artifact
    from medai.registry import Registry

    corrupted = orphans_before = leftover = 0
    for _ in range(kills):
        kill_after(spawn("register", home, str(artifact)), 0.05, 0.6, rng)
        db.dispose_all()
        registry = Registry()
        for record in registry.list_models():
            try:
                verify_artifact(record.artifact_path, record.manifest)
            except Exception:  # noqa: BLE001
                corrupted += 1
        orphans_before += _orphans(registry)
        registry.cleanup()  # what a restarting service does first
        leftover += _orphans(registry)
    versions = len(Registry().list_models())
    return {"kills": kills, "versions_registered": versions, "corrupted_entries": corrupted,
            "orphans_found_after_kills": orphans_before, "orphans_after_cleanup": leftover}


def _orphans(registry) -> int:
    folder = registry.store / "crash"
    if not folder.is_dir():
        return 0
    referenced = {Path(r.artifact_path).resolve() for r in registry.list_models()}
    return sum(1 for p in folder.iterdir() if p.resolve() not in referenced)


def phase_artifact(home: Path, kills: int, rng: random.Random) -> dict:
    from medai.fsutil import clean_stale_siblings
    from medai.models.artifact import read_model_json, verify_artifact

    target = home / "out" / "model"
    broken = missing = orphans = 0
    seen = set()
    for k in range(kills):
        kill_after(spawn("artifact", home, str(target)), 0.05, 0.5, rng)
        try:
            verify_artifact(target)
            seen.add(read_model_json(target, verify=False)["version"])
        except Exception:  # noqa: BLE001
            if target.exists() or k > 0:
                if target.exists():
                    broken += 1
                else:
                    missing += 1
        clean_stale_siblings(target.parent)  # what the next writer does first
        orphans += sum(1 for p in target.parent.iterdir() if p.name != "model")
    return {"kills": kills, "half_written_or_corrupt": broken, "missing_after_first_write": missing,
            "leftovers_after_cleanup": orphans, "versions_seen": sorted(seen)}


def phase_job(home: Path, kills: int, rng: random.Random, model_dir: Path | str) -> dict:
    import pandas as pd

    from medai import db
    from medai.serving.jobs import JobStore

    rows = _wdbc_frame(4000)
    store = JobStore(lease_s=1.0, max_attempts=1000)
    ids = []
    for i in range(max(3, kills // 10)):
        job_id = store.new_id()
        folder = store.folder(job_id)
        folder.mkdir(parents=True)
        rows.to_csv(folder / "input.csv", index=False)
        store.create(job_id, "wdbc", 1, "csv", "k", hashlib.sha256(str(i).encode()).hexdigest(), len(rows))
        ids.append(job_id)
    for _ in range(kills):
        kill_after(spawn("job", home, str(model_dir)), 0.3, 2.5, rng)
    db.dispose_all()
    # a last worker finishes what is left (leases of killed workers run out after 1 s)
    proc = spawn("job", home, str(model_dir))
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 300
    store = JobStore(lease_s=1.0, max_attempts=1000)
    while time.monotonic() < deadline and any(store.get(j)["status"] in ("queued", "running") for j in ids):
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    infos = [store.get(j) for j in ids]
    done = [i for i in infos if i["status"] == "done"]
    failed = [i for i in infos if i["status"] == "failed"]
    stuck = [i for i in infos if i["status"] in ("queued", "running")]
    incomplete = 0
    for info in done:
        result = pd.read_csv(store.folder(info["id"]) / "result.csv")
        incomplete += len(result) != len(rows) or result["probability"].isna().any()
    ended = [j for j in ids if store.get(j)["status"] in ("done", "failed")]
    inputs_left = sum((store.folder(j) / "input.csv").exists() for j in ended)
    unclean = [i["error"] for i in failed if not i["error"] or "internal error" in i["error"]]
    return {"kills": kills, "jobs": len(ids), "done": len(done), "failed": len(failed), "stuck": len(stuck),
            "incomplete_results": int(incomplete), "inputs_left_after_end": inputs_left,
            "unclean_failures": len(unclean)}


def _wdbc_frame(n: int):
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    return pd.concat([frame] * (n // len(frame) + 1), ignore_index=True).head(n)


def phase_audit(home: Path, kills: int, rng: random.Random) -> dict:
    from medai import db
    from medai.privacy.audit import AuditLog

    failures = missing = 0
    acked_total = 0
    for _ in range(kills):
        lines: list[str] = []
        kill_after(spawn("audit", home), 0.1, 0.8, rng, lines)
        acked = [int(x) for x in lines if x.strip().isdigit()]
        acked_total += len(acked)
        db.dispose_all()
        log = AuditLog()
        result = log.verify()
        failures += not result.ok
        present = log.head().seq
        missing += sum(1 for seq in acked if seq > present)
    return {"kills": kills, "rows_acknowledged": acked_total, "rows_total": AuditLog().count(),
            "verify_failures": failures, "acknowledged_rows_missing": missing}


def phase_serve(home: Path, kills: int, rng: random.Random) -> dict:
    import asyncio

    import httpx
    from _harness import Server, create_key, wdbc_rows

    from medai import db
    from medai.privacy.audit import AuditLog

    env = offline_env(home, MEDAI_RATE_LIMIT="100000000")
    key = create_key(home, "clinician", env)
    row = wdbc_rows(1)[0]
    answered: list[tuple[int, str]] = []
    errors: list[str] = []
    failures = missing = 0
    for k in range(kills):
        server = Server(home, env=env).wait_up()
        probe = httpx.post(server.url + "/v1/models/wdbc/predict", json={"records": [row]},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
        if probe.status_code != 200:
            raise RuntimeError(f"the server does not predict: {probe.status_code} {probe.text[:300]}")

        async def load(stop_at: float, k: int = k, url: str = server.url) -> None:
            async with httpx.AsyncClient(timeout=10) as client:

                async def worker(w: int) -> None:
                    i = 0
                    while time.monotonic() < stop_at + 5:
                        i += 1
                        body = json.dumps({"records": [dict(row, **{"mean radius": 10 + k + w / 100 + i / 1e7})]})
                        try:
                            r = await client.post(url + "/v1/models/wdbc/predict", content=body,
                                                  headers={"Authorization": f"Bearer {key}",
                                                           "Content-Type": "application/json"})
                        except httpx.HTTPError as exc:
                            errors.append(type(exc).__name__)
                            return  # the server is gone
                        answered.append((r.status_code, hashlib.sha256(body.encode()).hexdigest()))

                await asyncio.gather(*(worker(w) for w in range(8)))

        stop_at = time.monotonic() + rng.uniform(1.0, 3.0)
        killer = threading.Timer(stop_at - time.monotonic(), server.kill)
        killer.start()
        asyncio.run(load(stop_at))
        killer.join()
        db.dispose_all()
        log = AuditLog()
        failures += not log.verify().ok
        have = {r["input_sha256"] for r in log.export() if r["action"] == "predict"}
        missing += sum(1 for status, digest in answered if status == 200 and digest not in have)
    if not answered:
        log = "".join(p.read_text(errors="replace")[-3000:] for p in home.glob("server-*.log"))
        raise RuntimeError(f"no request was answered: {errors[:5]}\n{log}")
    return {"kills": kills, "answered": len(answered), "answered_200": sum(s == 200 for s, _ in answered),
            "answered_without_audit_row": missing, "verify_failures": failures}


# --------------------------------------------------------------------------------------------------- main


def run(phases, kills: int, serve_kills: int, seed: int = 0, workdir: Path | None = None,
        light_jobs: bool = False, artifact: Path | None = None) -> dict:
    """Run ``phases``; their results. The test suite calls this with a few kills and ``light_jobs`` (job
    workers run a stand-in model, so that each restart costs no scikit-learn/torch import)."""
    from _harness import train_wdbc

    rng = random.Random(seed)
    results = {}
    with tempfile.TemporaryDirectory(prefix="medai-crash-", dir=workdir) as tmp:
        base = Path(tmp)
        if artifact is None:  # a WDBC model to register and predict with
            model_home = base / "model-home"
            model_home.mkdir()
            artifact = train_wdbc(model_home)
        for phase in phases:
            home = base / phase
            home.mkdir()
            previous = os.environ.get("MEDAI_HOME")
            os.environ["MEDAI_HOME"] = str(home)  # the checks below read the same state as the children
            os.environ.pop("MEDAI_DATABASE_URL", None)
            try:
                started = time.monotonic()
                if phase == "register":
                    results[phase] = phase_register(home, kills, rng, artifact)
                elif phase == "artifact":
                    results[phase] = phase_artifact(home, kills, rng)
                elif phase == "job":
                    results[phase] = phase_job(home, kills, rng, "light" if light_jobs else artifact)
                elif phase == "audit":
                    results[phase] = phase_audit(home, kills, rng)
                elif phase == "serve":
                    from medai.registry import Registry

                    Registry().register(artifact, name="wdbc")
                    results[phase] = phase_serve(home, serve_kills, rng)
                results[phase]["seconds"] = round(time.monotonic() - started, 1)
            finally:
                from medai import db

                db.dispose_all()
                if previous is None:
                    os.environ.pop("MEDAI_HOME", None)
                else:
                    os.environ["MEDAI_HOME"] = previous
    return results


BAD_KEYS = ("corrupted_entries", "orphans_after_cleanup", "half_written_or_corrupt", "missing_after_first_write",
            "leftovers_after_cleanup", "stuck", "incomplete_results", "inputs_left_after_end", "unclean_failures",
            "verify_failures", "acknowledged_rows_missing", "answered_without_audit_row")


def problems(results: dict) -> list[str]:
    return [f"{phase}.{key} = {value}" for phase, r in results.items() for key, value in r.items()
            if key in BAD_KEYS and value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--serve-kills", type=int, default=10)
    parser.add_argument("--real-job-kills", type=int, default=10)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child")
    parser.add_argument("--home")
    parser.add_argument("arg", nargs="?")
    args = parser.parse_args()
    if args.child:
        fn = CHILDREN[args.child]
        fn(Path(args.home), *([args.arg] if args.arg else []))
        return 0
    phases = args.phases.split(",")
    results = run(phases, args.kills, args.serve_kills, args.seed, light_jobs=True)
    if "job" in phases and args.real_job_kills:
        real = run(["job"], args.real_job_kills, 0, args.seed + 1)
        results["job (real model)"] = real["job"]
    print("| phase | kills | result | seconds |\n|---|---|---|---|")
    for phase, r in results.items():
        facts = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("kills", "seconds"))
        print(f"| {phase} | {r['kills']} | {facts} | {r['seconds']} |")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "crash_safety.json").write_text(json.dumps(results, indent=2))
    bad = problems(results)
    for line in bad:
        print("LOST OR CORRUPTED:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Serving benchmark: single-record tabular predict, on loopback, three servers with the same model.

(a) MedAI — ``medai.serving.app`` under uvicorn: API-key auth, role check, rate limit, schema validation,
    hash-chained audit row per request (background writer, SQLite in a temporary MEDAI_HOME);
(b) a bare FastAPI endpoint calling the same loaded model in-process (no auth, no audit, no validation);
(c) MLflow's scoring server (``mlflow models serve --env-manager local``) with the same fitted
    scikit-learn model saved by ``mlflow.sklearn`` (``pyfunc_predict_fn="predict_proba"``).

Each server runs as one uvicorn worker process on 127.0.0.1. The load generator is ``wrk`` when installed
(``apt-get install wrk``), else a small asyncio httpx client. Two phases per server, bounded in time
(wrk) or request count (httpx): *latency* with one connection (p50/p99, req/s of a single client) and
*throughput* with ``--connections`` concurrent connections.

    python benchmarks/serving.py [--duration 10] [--connections 8] [--skip-mlflow]

Goals (issue 4): p50 <= 2 ms for (a); (a) >= 0.8 x (b) throughput; (a) >= 3 x (c) throughput.
Numbers depend on the machine and its load: run on an otherwise idle machine for figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent

BARE_APP = textwrap.dedent(
    """
    import os
    from fastapi import FastAPI
    from pydantic import BaseModel
    from medai.road import load_model

    model = load_model(os.environ["BENCH_MODEL_DIR"])
    app = FastAPI()

    class Body(BaseModel):
        records: list[dict]

    @app.post("/predict")
    def predict(body: Body):
        return {"predictions": model.predict_records(body.records)}  # the prediction call MedAI's service makes
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------- load generation


def _wrk(url: str, body: str, headers: dict[str, str], connections: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write('wrk.method = "POST"\n')
        handle.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers.items():
            handle.write(f'wrk.headers["{k}"] = "{v}"\n')
        script = handle.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", script, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    p50 = ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = ms(re.search(r"99%\s+(\S+)", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    return {"p50_ms": p50, "p99_ms": p99, "rps": rps, "requests": requests, "errors": errors}


async def _httpx(url: str, body: str, headers: dict[str, str], connections: int, total: int) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        remaining = total

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code >= 300

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "errors": errors,
    }


def measure(url: str, body: str, headers: dict[str, str], connections: int, duration: float, total: int) -> dict:
    headers = {"Content-Type": "application/json", **headers}
    for _ in range(50):  # warm-up: model load, key verification, caches
        httpx.post(url, content=body, headers=headers, timeout=30).raise_for_status()
    if shutil.which("wrk"):
        return _wrk(url, body, headers, connections, duration)
    return asyncio.run(_httpx(url, body, headers, connections, total))


def train_image_model(out: Path) -> bytes:
    """A small CNN trained one epoch on toy 28 px images (speed only; not a useful model); a PNG to send."""
    import io

    import numpy as np
    from PIL import Image

    from medai.modalities.imaging.data import image_dataset
    from medai.road import TrainOptions, train
    from medai.tasks.catalog import get_task

    rng = np.random.default_rng(0)
    images, labels, official, start = [], [], {}, 0
    for split, n in zip(("train", "val", "test"), (64, 32, 32), strict=True):
        y = rng.integers(0, 2, n)
        images += [(rng.random((28, 28)) * 0.3 + 0.7 * k * np.tri(28)).astype(np.float32) for k in y]
        labels += list(y)
        official[split] = np.arange(start, start + n)
        start += n
    data = image_dataset(images, np.asarray(labels), ["normal", "pneumonia"], 2, 28, source="toy", official=official)
    train(get_task("pneumonia-xray"), data, out, TrainOptions(learner="small-cnn", n_boot=20, show_progress=False,
                                                              extra={"epochs": 1}))
    buffer = io.BytesIO()
    Image.fromarray((np.tri(28) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_latency(url: str, png: bytes, headers: dict[str, str], total: int) -> dict:
    latencies = []
    with httpx.Client(timeout=30) as client:
        for _ in range(10):
            client.post(url, files={"file": ("x.png", png, "image/png")}, headers=headers).raise_for_status()
        start = time.perf_counter()
        for _ in range(total):
            t0 = time.perf_counter()
            client.post(url, files={"file": ("x.png", png, "image/png")}, headers=headers).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "rps": total / elapsed,
        "requests": total,
    }


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk phase")
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase (httpx fallback)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections, throughput phase")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-image", action="store_true", help="skip the image predict latency of (a)")
    parser.add_argument("--image-requests", type=int, default=200)
    parser.add_argument("--no-readme", action="store_true", help="do not write the table into README.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medai-bench-"))
    env = dict(
        os.environ,
        MEDAI_HOME=str(work / "home"),
        MEDAI_RATE_LIMIT="100000000",
        MEDAI_RATE_WINDOW_S="60",
        PYTHONUNBUFFERED="1",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("MEDAI_DATABASE_URL", None)
    env.pop("MEDAI_REDIS_URL", None)
    os.environ.update(MEDAI_HOME=env["MEDAI_HOME"])
    procs: list[subprocess.Popen] = []
    results: dict[str, dict] = {}
    results_image = None
    try:
        from medai.registry import Registry
        from medai.road import TrainOptions, train_task
        from medai.serving.keys import KeyStore

        model_dir = work / "model"
        print("training the WDBC model ...", flush=True)
        train_task("breast-cancer-wdbc", model_dir, TrainOptions(seed=0, cv=None, n_boot=50, show_progress=False))
        record = Registry().register(model_dir, name="wdbc")
        image_png = None
        if not args.skip_image:
            try:
                image_png = train_image_model(work / "image_model")
                Registry().register(work / "image_model", name="xray")
            except Exception as exc:  # noqa: BLE001 - e.g. torch not installed
                print(f"image model not measured: {type(exc).__name__}: {exc}", flush=True)
        _, key = KeyStore().create("bench", "clinician")
        from medai.road import load_model

        model = load_model(record.artifact_path, expected_manifest=record.manifest)
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
        row = {k: float(v) for k, v in frame.iloc[0].items()}
        body = json.dumps({"records": [row]})
        uvicorn = [
            PY,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            "1",
        ]

        # (a) MedAI
        port = free_port()
        procs.append(
            subprocess.Popen(
                [*uvicorn, "--port", str(port), "--factory", "medai.serving.app:create_app"], env=env, cwd=work
            )
        )
        wait_up(f"http://127.0.0.1:{port}/health", procs[-1])
        targets = {
            "a": (
                f"http://127.0.0.1:{port}/v1/models/wdbc/predict",
                body,
                {"Authorization": f"Bearer {key}"},
                procs[-1],
            )
        }

        # (b) bare FastAPI, same model in-process
        (work / "bare_app.py").write_text(BARE_APP)
        port_b = free_port()
        procs.append(
            subprocess.Popen(
                [*uvicorn, "--port", str(port_b), "bare_app:app"],
                env=dict(env, BENCH_MODEL_DIR=record.artifact_path),
                cwd=work,
            )
        )
        wait_up(f"http://127.0.0.1:{port_b}/docs", procs[-1])
        targets["b"] = (f"http://127.0.0.1:{port_b}/predict", body, {}, procs[-1])

        # (c) MLflow scoring server with the same fitted estimator
        if not args.skip_mlflow:
            try:
                import mlflow.sklearn

                mlflow_dir = work / "mlflow_model"
                mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
                mlflow.sklearn.save_model(
                    model.learner,
                    str(mlflow_dir),
                    pyfunc_predict_fn="predict_proba",
                    serialization_format="cloudpickle",
                )
                port_c = free_port()
                mlflow_log = open(work / "mlflow.log", "wb")  # noqa: SIM115 - closed with the process
                procs.append(
                    subprocess.Popen(
                        [
                            str(BIN / "mlflow"),
                            "models",
                            "serve",
                            "-m",
                            str(mlflow_dir),
                            "--env-manager",
                            "local",
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(port_c),
                            "-w",
                            "1",
                        ],
                        env=env,
                        cwd=work,
                        stdout=mlflow_log,
                        stderr=subprocess.STDOUT,
                    )
                )
                try:
                    wait_up(f"http://127.0.0.1:{port_c}/ping", procs[-1], timeout=180)
                except RuntimeError:
                    mlflow_log.flush()
                    print((work / "mlflow.log").read_text()[-3000:], flush=True)
                    raise
                body_c = json.dumps({"dataframe_records": [row]})
                targets["c"] = (f"http://127.0.0.1:{port_c}/invocations", body_c, {}, procs[-1])
            except Exception as exc:  # noqa: BLE001 - report and go on without (c)
                print(f"MLflow server not measured: {type(exc).__name__}: {exc}", flush=True)

        for name, (url, payload, headers, _proc) in targets.items():
            print(f"measuring ({name}) ...", flush=True)
            single = measure(url, payload, headers, 1, args.duration, args.requests)
            many = measure(url, payload, headers, args.connections, args.duration, args.requests)
            results[name] = {"single": single, "many": many}
        if image_png is not None:
            print("measuring (a) image predict ...", flush=True)
            url = targets["a"][0].replace("/wdbc/", "/xray/")
            results_image = image_latency(url, image_png, {"Authorization": f"Bearer {key}"}, args.image_requests)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    labels = {"a": "(a) MedAI auth+audit", "b": "(b) bare FastAPI", "c": "(c) MLflow serve"}
    gen = "wrk" if shutil.which("wrk") else "httpx"
    print(f"\nsingle-record tabular predict, loopback, 1 uvicorn worker each, load generator {gen}")
    print(
        f"{'server':24} {'p50 ms':>8} {'p99 ms':>8} {'req/s 1c':>9} {'req/s ' + str(args.connections) + 'c':>9} "
        f"{'p50 ' + str(args.connections) + 'c':>9} {'errors':>7}"
    )
    for name, r in results.items():
        s, m = r["single"], r["many"]
        print(
            f"{labels[name]:24} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['rps']:9.0f} {m['rps']:9.0f} "
            f"{m['p50_ms']:9.2f} {s['errors'] + m['errors']:7d}"
        )
    if "a" in results and "b" in results:
        a, b = results["a"], results["b"]
        print(
            f"\n(a)/(b) throughput: {a['single']['rps'] / b['single']['rps']:.2f} (1 connection), "
            f"{a['many']['rps'] / b['many']['rps']:.2f} ({args.connections} connections)   goal >= 0.8"
        )
        print(f"(a) p50 single client: {a['single']['p50_ms']:.2f} ms   goal <= 2 ms")
    if "a" in results and "c" in results:
        a, c = results["a"], results["c"]
        print(
            f"(a)/(c) throughput: {a['single']['rps'] / c['single']['rps']:.2f} (1 connection), "
            f"{a['many']['rps'] / c['many']['rps']:.2f} ({args.connections} connections)   goal >= 3"
        )
    if results_image is not None:
        print(
            f"(a) image predict (28 px PNG, small CNN, 1 connection, {results_image['requests']} requests): "
            f"p50 {results_image['p50_ms']:.2f} ms, p99 {results_image['p99_ms']:.2f} ms, "
            f"{results_image['rps']:.0f} req/s"
        )
    print("note: shared 2-core machine; load generator and servers compete for the same cores; noisy numbers")
    if not args.no_readme and "a" in results:
        n = args.connections
        lines = [f"| server | p50 ms (1 conn.) | p99 ms (1 conn.) | req/s (1 conn.) | req/s ({n} conn.) |",
                 "|---|---|---|---|---|"]
        for name, r in results.items():
            lines.append(f"| {labels[name]} | {r['single']['p50_ms']:.2f} | {r['single']['p99_ms']:.2f} | "
                         f"{r['single']['rps']:.0f} | {r['many']['rps']:.0f} |")
        if "b" in results:
            lines.append(f"\n(a)/(b) throughput {results['a']['single']['rps'] / results['b']['single']['rps']:.2f} "
                         f"(1 connection), {results['a']['many']['rps'] / results['b']['many']['rps']:.2f} ({n})")
        if "c" in results:
            lines.append(f"(a)/(c) throughput {results['a']['single']['rps'] / results['c']['single']['rps']:.2f} "
                         f"(1 connection), {results['a']['many']['rps'] / results['c']['many']['rps']:.2f} ({n})")
        if results_image is not None:
            lines.append(f"image predict (28 px PNG, small CNN): p50 {results_image['p50_ms']:.1f} ms, "
                         f"p99 {results_image['p99_ms']:.1f} ms")
        lines.append(f"load generator {gen}; client and servers share the 2 cores")
        print("README updated" if update_readme("serving", "\n".join(lines)) else "README has no serving markers")


if __name__ == "__main__":
    main()

"""Load: the service at twice its measured single-worker capacity, for minutes, on loopback.

1. Capacity: one ``medai serve`` worker, 8 connections as fast as they go for 15 s -> C req/s (single-record
   tabular predict with auth, rate limit, validation and a durable audit row per request).
2. Overload: 24 connections offering 2 x C req/s (an open-loop schedule per connection; a connection that is
   still waiting sends its next request as soon as it has the answer) for ``--duration`` seconds. The per-key
   rate limit is set to C per second, so the service sheds the excess with 429 instead of queueing it.
   Reported: answers by status, errors other than 429 (must be 0), p50/p99 latency of every answer, the
   server's RSS every 5 s (growth after warm-up must stay under 10%).
3. The same with ``--workers 2``; afterwards the audit chain must verify and every answered request must
   have its row (each request carries a unique body, so its row is found by the body's sha256).

The client is a small asyncio HTTP/1.1 keep-alive client (pre-built requests) sharing the machine's cores with
the server: figures are for that setting.

    python benchmarks/load.py [--duration 600] [--workers 1,2]

Writes benchmarks/results/load.json; exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import Server, create_key, offline_env, train_wdbc, wdbc_rows  # noqa: E402

PLACEHOLDER = "987654.321"


class Client:
    """One keep-alive HTTP/1.1 connection sending pre-built POSTs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, request: bytes) -> tuple[int, bool]:
        """The answer's status, and whether it is a 429 of the worker's in-flight limit (not the key's rate)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, status == 429 and b"at capacity" in body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def build(key: str, body: str, port: int) -> bytes:
    data = body.encode()
    return (
        f"POST /v1/models/wdbc/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def drive(port: int, key: str, template: str, connections: int, seconds: float, rate: float | None,
                keep: bool, tag: int) -> dict:
    """``connections`` clients for ``seconds``; ``rate`` req/s offered in total (None = as fast as possible).
    ``keep``: remember each answered request's (status, body sha256)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answered: list[tuple[int, str]] = []
    errors = {"connection": 0}
    shed = [0]
    stop = time.perf_counter() + seconds
    counter = [0]

    async def one(c: int) -> None:
        client = Client(port)
        await client.connect()
        interval = connections / rate if rate else 0.0
        due = time.perf_counter() + (c / connections) * interval
        try:
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                if interval and due > now:
                    await asyncio.sleep(due - now)
                counter[0] += 1
                value = f"{tag}{c:03d}{counter[0]:09d}"  # a unique, valid number in 'mean radius'
                body = template.replace(PLACEHOLDER, f"10.{value}", 1)
                sent = time.perf_counter()
                try:
                    status, overloaded = await client.post(build(key, body, port))
                except (OSError, asyncio.IncompleteReadError):
                    errors["connection"] += 1
                    return
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1
                shed[0] += overloaded
                if keep:
                    answered.append((status, hashlib.sha256(body.encode()).hexdigest()))
                due = max(due + interval, time.perf_counter()) if interval else 0.0
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "statuses": dict(sorted(statuses.items())),
        "shed_429": shed[0],  # of the 429s, those of the in-flight limit (the rest: the key's rate limit)
        "connection_errors": errors["connection"],
        "answered": answered,
    }


async def sample_rss(server: Server, every: float, until: float, out: list[tuple[float, float]]) -> None:
    started = time.perf_counter()
    while time.perf_counter() < until:
        out.append((round(time.perf_counter() - started, 1), server.rss_mb()))
        await asyncio.sleep(every)


async def overload(server: Server, key: str, template: str, rate: float, seconds: float, keep: bool, tag: int):
    rss: list[tuple[float, float]] = []
    until = time.perf_counter() + seconds
    result, _ = await asyncio.gather(
        drive(server.port, key, template, 24, seconds, rate, keep, tag), sample_rss(server, 5.0, until, rss)
    )
    result["rss_mb"] = rss
    return result


def rss_growth(samples: list[tuple[float, float]], warmup_s: float = 60.0) -> float | None:
    """Growth of the mean RSS over the last minute against the first minute after warm-up."""
    after = [mb for t, mb in samples if t >= warmup_s]
    if len(after) < 8:
        return None
    window = max(2, min(12, len(after) // 4))
    first, last = statistics.mean(after[:window]), statistics.mean(after[-window:])
    return (last - first) / first


def audit_check(home: Path, answered: list[tuple[int, str]]) -> dict:
    os.environ["MEDAI_HOME"] = str(home)
    os.environ.pop("MEDAI_DATABASE_URL", None)
    from medai.privacy.audit import AuditLog

    log = AuditLog()
    verify = log.verify()
    predicted, denied = set(), 0
    for row in log.export():
        if row["action"] == "predict" and row["status_code"] == 200:
            predicted.add(row["input_sha256"])
        elif row["status_code"] == 429:
            denied += 1
    missing_200 = sum(1 for status, digest in answered if status == 200 and digest not in predicted)
    answered_429 = sum(1 for status, _ in answered if status == 429)
    return {"chain_ok": verify.ok, "rows_checked": verify.checked, "answered_200_without_row": missing_200,
            "answered_429": answered_429, "rows_429": denied,
            "answered_429_without_row": max(0, answered_429 - denied)}


def table(report: dict) -> str:
    capacity = report["capacity"]
    lines = [f"Capacity, 1 worker, 8 connections, no rate limit: {capacity['rps']:.0f} req/s (p99 "
             f"{capacity['p99_ms']:.1f} ms). Then 24 connections offering twice that for {report['duration_s']:.0f} s, "
             "the per-key rate limit set to the capacity, each worker shedding what it cannot start at once (its "
             "in-flight limit, MEDAI_MAX_IN_FLIGHT, default 4 per core):", "",
             "| workers | answered req/s | 200 / 429 (of them shed: in-flight limit) | other errors | p50 ms | "
             "p99 ms (goal <= 50) | RSS growth after "
             "warm-up (goal < 10%) | audit chain | answered without a row | load avg at the end (1/5/15 min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(k for k in report if k.startswith("workers_")):
        r = report[key]
        audit = r.get("audit")
        growth = "n/a" if r["rss_growth"] is None else f"{100 * r['rss_growth']:.1f}%"
        lines.append(f"| {r['workers']} | {r['rps']:.0f} | {r['statuses'].get('200', r['statuses'].get(200, 0)):,} / "
                     f"{r['statuses'].get('429', r['statuses'].get(429, 0)):,} ({r.get('shed_429', 0):,}) | "
                     f"{r['errors_other_than_429']} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {growth} | "
                     + (f"{'verifies' if audit['chain_ok'] else 'BROKEN'} ({audit['rows_checked']:,} rows) | "
                        f"{audit['answered_200_without_row']} |" if audit else "not checked | |")
                     + " " + "/".join(f"{x:.1f}" for x in r.get("load_average", ())) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of overload per worker count")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--capacity-s", type=float, default=15.0)
    parser.add_argument("--no-monitoring", action="store_true",
                        help="diagnosis: serve with MEDAI_MONITORING=0 (no drift/performance recorder); the "
                             "README table is left alone")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="MEDAI_MAX_IN_FLIGHT for the overload runs (default: the service's own default; 0 turns "
                             "the shedding off); the README table is left alone when set")
    args = parser.parse_args()
    report: dict = {"duration_s": args.duration, "max_in_flight": args.max_in_flight}
    ok = True
    template = json.dumps({"records": [dict(wdbc_rows(1)[0], **{"mean radius": float(PLACEHOLDER)})]})
    with tempfile.TemporaryDirectory(prefix="medai-load-") as tmp:
        base = Path(tmp)
        model_home = base / "model"
        model_home.mkdir()
        artifact = train_wdbc(model_home)
        capacity = None
        for workers in [int(w) for w in args.workers.split(",")]:
            home = base / f"w{workers}"
            home.mkdir()
            env = offline_env(home, **({"MEDAI_MONITORING": "0"} if args.no_monitoring else {}))
            import subprocess

            code = ("from medai.registry import Registry\n"
                    f"Registry().register({str(artifact)!r}, name='wdbc') if not Registry().list_models() else None\n"
                    "Registry().set_stage('wdbc', 1, 'production')  # preloaded by every worker at start-up")
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            key = create_key(home, "clinician", env)
            if capacity is None:  # measured once, on one worker, without a rate limit
                server = Server(home, workers=1, env=dict(env, MEDAI_RATE_LIMIT="1000000000")).wait_up()
                try:
                    asyncio.run(drive(server.port, key, template, 8, 5.0, None, False, 8))  # warm-up
                    measured = asyncio.run(drive(server.port, key, template, 8, args.capacity_s, None, False, 9))
                finally:
                    server.stop()
                capacity = measured["rps"]
                report["capacity"] = {k: v for k, v in measured.items() if k != "answered"}
                print(f"capacity, 1 worker, 8 connections: {capacity:.0f} req/s, p99 {measured['p99_ms']:.1f} ms",
                      flush=True)
            limit = max(1, int(capacity))
            server_env = dict(env, MEDAI_RATE_LIMIT=str(limit), MEDAI_RATE_WINDOW_S="1")
            if args.max_in_flight is not None:
                server_env["MEDAI_MAX_IN_FLIGHT"] = str(args.max_in_flight)
            if workers > 1:  # several workers share one limit through Redis
                server_env["MEDAI_REDIS_URL"] = os.environ.get("MEDAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
            server = Server(home, workers=workers, env=server_env).wait_up()
            try:
                asyncio.run(drive(server.port, key, template, 8, 3.0, None, False, workers))  # warm every worker
                result = asyncio.run(overload(server, key, template, 2 * capacity, args.duration,
                                              keep=workers > 1, tag=workers))
            finally:
                server.stop()
            answered = result.pop("answered")
            other_errors = sum(n for s, n in result["statuses"].items() if s not in (200, 429))
            result.update(workers=workers, offered_rps=round(2 * capacity, 1), rate_limit_per_s=limit,
                          errors_other_than_429=other_errors + result["connection_errors"],
                          rss_growth=rss_growth(result["rss_mb"]), load_average=os.getloadavg())
            if workers > 1:
                result["audit"] = audit_check(home, answered)
            report[f"workers_{workers}"] = result
            growth = result["rss_growth"]
            print(
                f"{workers} worker(s), 24 connections, offered {2 * capacity:.0f} req/s for {args.duration:.0f} s: "
                f"answered {result['rps']:.0f} req/s {result['statuses']} ({result['shed_429']} of the 429 from "
                f"the in-flight limit), p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms, other errors {result['errors_other_than_429']}, RSS "
                f"{result['rss_mb'][0][1]:.0f} -> {result['rss_mb'][-1][1]:.0f} MB "
                f"(growth after warm-up {'n/a' if growth is None else f'{100 * growth:.1f}%'})"
                + (f", audit {result['audit']}" if workers > 1 else ""),
                flush=True,
            )
            ok &= result["errors_other_than_429"] == 0 and result["p99_ms"] <= 50
            ok &= growth is None or growth < 0.10
            if workers > 1:
                audit = result["audit"]
                ok &= audit["chain_ok"] and not audit["answered_200_without_row"]
                ok &= not audit["answered_429_without_row"]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / ("load-no-monitoring.json" if args.no_monitoring else "load.json")).write_text(json.dumps(report, indent=2))
    from readme_table import update_readme

    if not args.no_monitoring and args.max_in_flight is None:
        update_readme("load", table(report))
    print("goals met" if ok else "GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fuzzing the service with schemathesis against its own OpenAPI document, with an admin key.

Every operation of ``/v1/openapi.json`` gets examples generated from the schema (valid ones, and invalid
ones where the schema allows any), sent to the service; each answer is checked for

- a server error (any 5xx);
- a schema violation: a status code the document does not list, a content type it does not list, a body
  or headers that do not match the documented schema.

The test suite runs :func:`fuzz` in-process with a small example count (``tests/test_fuzz.py``); this script
runs it against a live ``medai serve`` on loopback for longer:

    python benchmarks/fuzz.py [--examples 200] [--seed 0]

Exit status 1 if anything failed. Results go to ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

SERVER_ERROR = "server error (5xx)"


def fuzz(
    doc: dict[str, Any],
    headers: dict[str, str],
    max_examples: int,
    *,
    app: Any = None,
    base_url: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run every operation of ``doc`` with ``max_examples`` positive and as many negative examples, against
    ``app`` (in-process ASGI) or ``base_url`` (a live server). Returns counts and the first failures."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.core.failures import FailureGroup  # a BaseExceptionGroup, not an Exception

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    schema = schemathesis.openapi.from_dict(doc)
    if app is not None:
        schema.app = app
    stats: dict[str, Any] = {"operations": 0, "examples": 0, "statuses": Counter(), "failures": []}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        stats["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = _runner(operation, mode, stats, headers, base_url, checks, FailureGroup)
            try:
                run_settings(seed, max_examples)(run)()
            except Unsatisfiable:
                pass  # e.g. no invalid input exists for an operation without parameters

    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["server_errors"] = sum(n for code, n in stats["statuses"].items() if code >= 500)
    stats["schema_violations"] = sum(1 for f in stats["failures"] if f[2] == "schema violation")
    stats["statuses"] = dict(sorted(stats["statuses"].items()))
    return stats


def run_settings(seed: int, max_examples: int):
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import seed as hseed

    def apply(test):
        return hseed(seed)(
            settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )(test)
        )

    return apply


def _runner(operation, mode, stats, headers, base_url, checks, failure_group):
    """The hypothesis test of one operation in one generation mode (records, never raises on a failed check)."""
    from hypothesis import given

    label, mode_name = operation.label, mode.value

    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        stats["examples"] += 1
        kwargs = {"base_url": base_url} if base_url else {}
        try:
            response = case.call(headers=headers, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a dropped connection counts as a failure
            stats["failures"].append((label, mode_name, "no response", type(exc).__name__))
            return
        stats["statuses"][response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except (Exception, failure_group) as exc:  # noqa: BLE001 - a failed check; keep going, count it
            kind = SERVER_ERROR if response.status_code >= 500 else "schema violation"
            stats["failures"].append((label, mode_name, kind, " ".join(str(exc).split())[:300]))

    return run


def table(stats: dict[str, Any]) -> str:
    lines = [
        "| operations | examples | 5xx answers | schema violations | other failures | seconds |",
        "|---|---|---|---|---|---|",
        f"| {stats['operations']} | {stats['examples']} | {stats['server_errors']} | {stats['schema_violations']} "
        f"| {len(stats['failures']) - stats['schema_violations'] - stats['server_errors']} | {stats['seconds']} |",
    ]
    return "\n".join(lines)


def main() -> int:
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _harness import Server, create_key, offline_env, train_wdbc

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medai-fuzz-") as tmp:
        home = Path(tmp)
        train_wdbc(home)
        env = offline_env(home, MEDAI_RATE_LIMIT="10000000")
        key = create_key(home, "admin", env)
        server = Server(home, env=env).wait_up()
        try:
            headers = {"Authorization": f"Bearer {key}"}
            doc = httpx.get(server.url + "/v1/openapi.json", headers=headers, timeout=30).json()
            stats = fuzz(doc, headers, args.examples, base_url=server.url, seed=args.seed)
            alive = httpx.get(server.url + "/health", timeout=10).status_code == 200
        finally:
            server.stop()
        log = server.log.read_text(errors="replace")
    stats["server_alive_after"] = alive
    stats["tracebacks_in_log"] = log.count("Traceback")
    print(table(stats))
    print(f"status codes: {stats['statuses']}; server alive after: {alive}; tracebacks in log: "
          f"{stats['tracebacks_in_log']}")
    for failure in stats["failures"][:20]:
        print("FAIL", *failure)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(stats, indent=2, default=str))
    return 0 if not stats["failures"] and alive else 1


if __name__ == "__main__":
    sys.exit(main())

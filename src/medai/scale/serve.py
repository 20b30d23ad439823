"""The model service as Ray Serve replicas (``medai serve --ray ADDR --replicas N``).

Each replica builds the very same FastAPI application as ``medai serve`` (authentication, roles, rate limits,
the hash-chained audit, jobs), so nothing about the API changes. The replicas share what must be shared through
the same stores as several uvicorn workers do: the database named by ``MEDAI_DATABASE_URL`` (API keys as salted
hashes, the audit chain, whose appends serialize on its head row, so replicas never fork it or leave gaps) and
Redis for rate limits (``MEDAI_REDIS_URL``). The ``MEDAI_*`` settings of the command are handed to the replicas;
raw API keys never are (only their hashes live in the database).
"""

from __future__ import annotations

import os
import time

from medai.errors import MedAIError
from medai.scale.cluster import require_ray

APP_NAME = "medai"


def _build_app():
    from medai.serving.app import create_app

    return create_app()


def replica_environment() -> dict[str, str]:
    """What a replica needs to reach the same stores as this process: the ``MEDAI_*`` settings (and the
    offline flags)."""
    keep = {k: v for k, v in os.environ.items() if k.startswith("MEDAI_")}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "MPLBACKEND",
                 "OMP_NUM_THREADS"):
        if name in os.environ:
            keep[name] = os.environ[name]
    return keep


def deploy(replicas: int = 2, host: str = "127.0.0.1", port: int = 8000, cpus_per_replica: float = 0.5):
    """Start (or update) the service on the connected cluster; returns the base URL."""
    require_ray()
    from ray import serve

    if replicas < 1:
        raise MedAIError(f"--replicas must be at least 1, got {replicas}")
    serve.start(http_options={"host": host, "port": port}, detached=False)
    deployment = serve.deployment(
        serve.ingress(_build_app)(type("MedAIService", (), {})),
        name="MedAIService", num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica, "runtime_env": {"env_vars": replica_environment()}},
        max_ongoing_requests=64,
    )
    serve.run(deployment.bind(), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}"


def shutdown() -> None:
    from ray import serve

    serve.shutdown()


def serve_forever(replicas: int, host: str, port: int, say=print) -> None:
    url = deploy(replicas, host, port)
    say(f"MedAI service on Ray Serve: {replicas} replicas at {url} (Ctrl-C stops it)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown()

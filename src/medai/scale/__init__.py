"""Scale-out on Ray (``medai[scale]``): the same commands on a cluster.

- :mod:`medai.scale.cluster`: connect to a cluster (``--ray ADDRESS`` / ``MEDAI_RAY_ADDRESS``), or start a
  small local one (tests, benchmarks);
- :mod:`medai.scale.executor`: independent work (CV folds, bootstrap replicates, benchmark seeds) as Ray tasks;
- :mod:`medai.scale.batch`: batch inference with Ray Data, streaming, to Parquet or CSV;
- :mod:`medai.scale.tune`: hyper-parameter search with Ray Tune (ASHA) over a learner's declared space;
- :mod:`medai.scale.distributed`: data-parallel torch training with Ray Train;
- :mod:`medai.scale.serve`: the service's predict path as Ray Serve replicas.

Nothing here is imported by the core: Ray is loaded only when a command is given ``--ray``.
"""

from medai.scale.cluster import ENV_ADDRESS, connect, ray_session, require_ray

__all__ = ["ENV_ADDRESS", "connect", "ray_session", "require_ray"]

"""Watching patients as their data arrives: the service's streams (clinician role, permission ``predict``).

- ``POST /v1/streams/{stream_id}/observations`` appends a batch of observations (``time`` in hours since the
  stream's index time, ``variable``, ``value``) to a stream bound to a longitudinal model on its first post, and
  answers the stream's updated risk (with the model's conformal prediction set) and whether it raised an alert;
- ``GET /v1/streams/{stream_id}`` answers the risk trajectory (one point per batch) and the alerts.

Stream ids are pseudonymous (letters, digits, ``._-``; never a name). Every observation is stored; those the model
cannot use (a variable it does not know, a value outside the physiologically possible range) are stored flagged,
named in the answer and left out of the risk. A batch that goes back in time (earlier than the stream's latest
observation) is refused with 422 and nothing of it is stored. A batch is idempotent by its client-given
``batch_id``: posting it again returns the stored answer and appends nothing. An alert is raised once per upward
crossing of the model's threshold, kept in the database and audited. Risk is recomputed from the stored usable
observations (summary features or the network over the stay so far).

Cheap per batch, same answers: each process keeps a stream's usable observations in memory (at most
``cache_size`` streams, least recently used dropped) and reads from the database only the rows stored since, by
row id; it reads the stream whole when the stream is new to it (a restart, another worker) or when the database's
count of usable rows differs from its own (another process appended). The cache is updated only after the
batch's transaction committed and dropped when a batch fails. One stay's features are computed in numpy
(:mod:`.small`, the same numbers as the polars path) and the networks run only up to the scored hour.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Float, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, get_engine, session_factory
from medai.errors import MedAIError, NotFoundError
from medai.serving.security import audit_box, require

STREAM_ID = r"^[A-Za-z0-9._-]{1,64}$"
router = APIRouter(tags=["streams"], dependencies=[Depends(require("predict"))])


class StreamRow(Base):
    __tablename__ = "streams"
    stream_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    last_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class StreamObservation(Base):
    __tablename__ = "stream_observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    batch_id: Mapped[str] = mapped_column(String(100), nullable=False)
    time: Mapped[float] = mapped_column(Float, nullable=False)
    variable: Mapped[str] = mapped_column(String(100), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    flag: Mapped[str | None] = mapped_column(String(200), nullable=True)


class StreamBatch(Base):
    __tablename__ = "stream_batches"
    stream_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    answer: Mapped[dict] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class StreamAlert(Base):
    __tablename__ = "stream_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    batch_id: Mapped[str] = mapped_column(String(100), nullable=False)
    hour: Mapped[float] = mapped_column(Float, nullable=False)
    risk: Mapped[float] = mapped_column(Float, nullable=False)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


TABLES = [StreamRow.__table__, StreamObservation.__table__, StreamBatch.__table__, StreamAlert.__table__]


class Observation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: float = Field(ge=0, le=1e6, description="hours since the stream's index time (e.g. ICU admission)")
    variable: str = Field(min_length=1, max_length=100)
    value: float = Field(allow_inf_nan=False)


class ObservationBatch(BaseModel):
    """Observations to append; ``model`` binds a new stream (``NAME`` or ``NAME:VERSION``)."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str = Field(min_length=1, max_length=100, description="client-given id: a repeated post is a no-op")
    model: str | None = Field(None, max_length=200)
    hour: float | None = Field(None, ge=0, description="score as of this hour (default: the latest observation)")
    observations: list[Observation] = Field(min_length=1, max_length=10_000)


@dataclass(frozen=True)
class Usable:
    """A stream's usable (unflagged) observations, in the order they were stored, and the last row id read."""

    time: tuple[float, ...] = ()
    variable: tuple[str, ...] = ()
    value: tuple[float, ...] = ()
    last_id: int = -1

    @property
    def count(self) -> int:
        return len(self.time)

    def extended(self, rows) -> Usable:
        if not rows:
            return self
        return Usable(self.time + tuple(r[1] for r in rows), self.variable + tuple(r[2] for r in rows),
                      self.value + tuple(r[3] for r in rows), int(rows[-1][0]))

    def rows(self) -> list[tuple[float, str, float]]:
        return list(zip(self.time, self.variable, self.value, strict=True))


class Streams:
    """The streams' store (tables created on first use: no edit to the schema list of the service)."""

    _locks: dict[str, threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, url: str | None = None, cache_size: int = 4096):
        Base.metadata.create_all(get_engine(url), tables=TABLES)
        self.sessions = session_factory(url)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, Usable] = OrderedDict()  # stream id -> its usable observations read so far

    def _usable(self, session, stream_id: str) -> Usable:
        """The stream's usable observations in the order they were stored: those this process read before plus
        the rows stored since (by row id); read whole when the stream is new to this process (a restart, another
        worker) or when the count in the database differs from the cache (rows another process appended)."""
        with self._guard:
            cached = self._cache.get(stream_id)
        where = (StreamObservation.stream_id == stream_id, StreamObservation.flag.is_(None))
        columns = (StreamObservation.id, StreamObservation.time, StreamObservation.variable, StreamObservation.value)
        after = cached.last_id if cached is not None else -1
        new = session.execute(select(*columns).where(*where, StreamObservation.id > after)
                              .order_by(StreamObservation.id)).all()
        usable = (cached or Usable()).extended(new)
        if cached is not None and usable.count != session.scalar(select(func.count()).select_from(
                StreamObservation).where(*where)):
            usable = Usable().extended(session.execute(select(*columns).where(*where)
                                                       .order_by(StreamObservation.id)).all())
        return usable

    def _remember(self, stream_id: str, usable: Usable) -> None:
        with self._guard:
            self._cache[stream_id] = usable
            self._cache.move_to_end(stream_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def forget(self, stream_id: str) -> None:
        with self._guard:
            self._cache.pop(stream_id, None)

    def lock(self, stream_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(stream_id, threading.Lock())

    def post(self, state, stream_id: str, batch: ObservationBatch) -> dict[str, Any]:
        with self.lock(stream_id):
            try:
                return self._post(state, stream_id, batch)
            except Exception:
                self.forget(stream_id)  # read again from the database next time
                raise

    def _post(self, state, stream_id: str, batch: ObservationBatch) -> dict[str, Any]:
        with self.sessions() as session:
            stored = session.get(StreamBatch, (stream_id, batch.batch_id))
            if stored is not None:
                return {**stored.answer, "replayed": True}
            stream = session.get(StreamRow, stream_id)
        model, record = self._model(state, stream, batch, stream_id)
        times = [o.time for o in batch.observations]
        earliest = min(times)
        if stream is not None and stream.last_time is not None and earliest < stream.last_time:
            raise MedAIError(f"batch {batch.batch_id!r}: observation time {earliest:g} h is before the stream's "
                             f"latest ({stream.last_time:g} h); a stream takes observations in time order "
                             "(nothing of this batch was stored)")
        flags = _flags(model, batch.observations)
        latest = max(times)
        hour = batch.hour if batch.hour is not None else latest
        if hour < latest:
            raise MedAIError(f"batch {batch.batch_id!r}: 'hour' {hour:g} is before its latest observation "
                             f"({latest:g} h)")
        with self.sessions.begin() as session:
            if stream is None:
                session.add(StreamRow(stream_id=stream_id, model=record.name, version=record.version,
                                      created_at=datetime.now(UTC)))
                session.flush()
            for o, flag in zip(batch.observations, flags, strict=True):
                session.add(StreamObservation(stream_id=stream_id, batch_id=batch.batch_id, time=o.time,
                                              variable=o.variable, value=o.value, flag=flag))
            session.flush()
            usable = self._usable(session, stream_id)
            risk, item = score(model, stream_id, usable.rows(), hour)
            row = session.get(StreamRow, stream_id)
            threshold = model.threshold if model.threshold is not None else 0.5
            previous = row.last_risk
            alert = bool(risk >= threshold and (previous is None or previous < threshold))
            row.last_time, row.last_risk = max(latest, row.last_time or 0.0), risk
            seq = session.query(StreamBatch).filter(StreamBatch.stream_id == stream_id).count() + 1
            answer = {"stream_id": stream_id, "batch_id": batch.batch_id, "model": record.name,
                      "version": record.version, "hour": hour, "risk": risk, "threshold": threshold,
                      "alert": alert, "prediction": item, "observations": len(batch.observations),
                      "flagged": [{"index": i, "variable": o.variable, "reason": f}
                                  for i, (o, f) in enumerate(zip(batch.observations, flags, strict=True)) if f],
                      "replayed": False}
            session.add(StreamBatch(stream_id=stream_id, batch_id=batch.batch_id, seq=seq, answer=answer,
                                    created_at=datetime.now(UTC)))
            if alert:
                session.add(StreamAlert(stream_id=stream_id, batch_id=batch.batch_id, hour=hour, risk=risk,
                                        threshold=threshold, created_at=datetime.now(UTC)))
        self._remember(stream_id, usable)  # only once committed: a rolled-back batch never enters the cache
        return answer

    def _model(self, state, stream, batch: ObservationBatch, stream_id: str):
        if stream is None:
            if not batch.model:
                raise MedAIError(f"stream {stream_id!r} is new: name its model in 'model' (NAME or NAME:VERSION)")
            name, _, version = batch.model.partition(":")
            record = state.record(name, int(version) if version.isdigit() else None)
        else:
            if batch.model and batch.model.partition(":")[0] != stream.model:
                raise MedAIError(f"stream {stream_id!r} is bound to model {stream.model!r}, not {batch.model!r}")
            record = state.record(stream.model, stream.version)
        model = state.load_model(record)
        if model.family != "longitudinal":
            raise MedAIError(f"model {record.name!r} is a {model.family} model; streams need a longitudinal model")
        return model, record

    def get(self, stream_id: str) -> dict[str, Any]:
        with self.sessions() as session:
            stream = session.get(StreamRow, stream_id)
            if stream is None:
                raise NotFoundError(f"no stream {stream_id!r}")
            batches = session.scalars(select(StreamBatch).where(StreamBatch.stream_id == stream_id)
                                      .order_by(StreamBatch.seq)).all()
            alerts = session.scalars(select(StreamAlert).where(StreamAlert.stream_id == stream_id)
                                     .order_by(StreamAlert.id)).all()
            counts = session.execute(select(StreamObservation.flag).where(
                StreamObservation.stream_id == stream_id)).scalars().all()
            return {"stream_id": stream_id, "model": stream.model, "version": stream.version,
                    "observations": len(counts), "flagged": sum(f is not None for f in counts),
                    "trajectory": [{"batch_id": b.batch_id, "hour": b.answer["hour"], "risk": b.answer["risk"],
                                    "alert": b.answer["alert"]} for b in batches],
                    "alerts": [{"hour": a.hour, "risk": a.risk, "threshold": a.threshold, "batch_id": a.batch_id,
                                "at": a.created_at.isoformat()} for a in alerts]}


def _flags(model, observations: list[Observation]) -> list[str | None]:
    from medai.modalities.longitudinal.ranges import range_of

    known = set(model.input_schema["variables"])
    flags = []
    for o in observations:
        bounds = range_of(o.variable)
        if o.variable not in known:
            flags.append("unknown variable (the model was not trained on it)")
        elif bounds and not bounds[0] <= o.value <= bounds[1]:
            flags.append(f"outside the physiologically possible range {bounds[0]:g}-{bounds[1]:g}")
        else:
            flags.append(None)
    return flags


def score(model, stream_id: str, rows, hour: float) -> tuple[float, dict[str, Any]]:
    """The risk of one stream from its usable observations, as of ``hour``."""
    from medai.modalities.longitudinal.stays import Stays

    variables = tuple(model.input_schema["variables"])
    stays = Stays.from_long(np.array([stream_id] * len(rows), dtype=object), np.array([r[0] for r in rows]),
                            np.array([r[1] for r in rows], dtype=object), np.array([r[2] for r in rows]),
                            ids=np.array([stream_id]), horizon=hour, variables=variables)
    s = model.scores(stays)
    item = model.items(s, stays)[0]
    return float(s[0]), item


def _streams(request: Request) -> Streams:
    state = request.app.state.medai
    streams = getattr(state, "longitudinal_streams", None)
    if streams is None:
        streams = state.longitudinal_streams = Streams(state.settings.database_url)
    return streams


StreamId = Path(pattern=STREAM_ID, description="pseudonymous stream id (letters, digits, '._-'; never a name)")


@router.post("/streams/{stream_id}/observations", summary="Append observations to a stream; the updated risk")
async def post_observations(batch: ObservationBatch, request: Request, stream_id: str = StreamId) -> dict:
    from starlette.concurrency import run_in_threadpool

    state = request.app.state.medai
    box = audit_box(request)
    box["action"] = "stream_observations"
    answer = await run_in_threadpool(_streams(request).post, state, stream_id, batch)
    box["model"], box["model_version"] = answer["model"], answer["version"]
    box["detail"] = {"stream": stream_id, "batch": batch.batch_id, "observations": answer["observations"],
                     "flagged": len(answer["flagged"]), "alert": answer["alert"], "replayed": answer["replayed"]}
    return answer


@router.get("/streams/{stream_id}", summary="A stream's risk trajectory and alerts")
async def get_stream(request: Request, stream_id: str = StreamId) -> dict:
    from starlette.concurrency import run_in_threadpool

    box = audit_box(request)
    box["action"] = "stream_read"
    box["detail"] = {"stream": stream_id}
    return await run_in_threadpool(_streams(request).get, stream_id)

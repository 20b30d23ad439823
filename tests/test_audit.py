"""Tamper-evident audit log: append, verify, tamper detection, concurrency, export; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from medai.db import get_engine
from medai.errors import MedAIError
from medai.privacy.audit import (
    GENESIS_HASH,
    AuditLog,
    BackgroundAuditWriter,
    input_sha256,
    row_hash,
)


def _fill(log: AuditLog, n: int) -> list[int]:
    return [
        log.record(
            "predict",
            key_id="0123456789ab",
            role="clinician",
            route="/v1/models/heart/predict",
            method="POST",
            model="heart",
            model_version="3",
            input_sha256=input_sha256(f"body {i}"),
            outcome="ok",
            status_code=200,
            client="10.0.0.1",
            detail={"rows": i, "ms": 1.5, "flags": ["a", "b"], "unicode": "é"},
        )
        for i in range(n)
    ]


def _sql(url: str, statement: str, **params) -> None:
    with get_engine(url).begin() as conn:
        conn.execute(text(statement), params)


def test_append_and_verify(database_url):
    log = AuditLog(database_url)
    empty = log.verify()
    assert empty.ok and empty.checked == 0
    assert log.head().seq == 0 and log.head().hash == GENESIS_HASH

    seqs = _fill(log, 5)
    assert seqs == [1, 2, 3, 4, 5]
    denied = log.record("predict", key_id="0123456789ab", outcome="denied", status_code=403)
    assert denied == 6
    result = log.verify()
    assert result.ok and bool(result) and result.checked == 6 and result.first_bad_seq is None
    head = log.head()
    assert head.seq == 6
    rows = list(log.export())
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, len(rows)))
    assert rows[-1]["hash"] == head.hash
    # Exported rows can be re-checked without the database, even after a JSON round trip.
    assert all(row_hash(json.loads(json.dumps(row))) == row["hash"] for row in rows)
    assert rows[0]["detail"] == {"rows": 0, "ms": 1.5, "flags": ["a", "b"], "unicode": "é"}


def test_record_many_and_anchor(database_url):
    log = AuditLog(database_url)
    assert log.record_many([]) == []
    assert log.record_many([{"action": "login"}, {"action": "models:list", "outcome": "ok"}]) == [1, 2]
    anchor = log.head()
    _fill(log, 2)
    assert log.verify(anchor=anchor).ok


def test_edited_row_is_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 5)
    _sql(database_url, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "edited" in result.reason
    assert result.checked == 2


def test_edited_row_with_recomputed_hash_breaks_the_next_link(database_url):
    log = AuditLog(database_url)
    _fill(log, 5)
    row = next(r for r in log.export() if r["seq"] == 2)
    row["model"] = "forged"
    _sql(database_url, "UPDATE audit_log SET model = 'forged', hash = :h WHERE seq = 2", h=row_hash(row))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "prev_hash" in result.reason


def test_edited_detail_and_timestamp_are_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 4)
    _sql(database_url, "UPDATE audit_log SET ts = :ts WHERE seq = 4", ts=datetime(2020, 1, 1))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4


def test_deleted_middle_row_is_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 5)
    _sql(database_url, "DELETE FROM audit_log WHERE seq = 3")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "missing" in result.reason


def test_deleted_and_renumbered_rows_are_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 5)
    _sql(database_url, "DELETE FROM audit_log WHERE seq = 3")
    _sql(database_url, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    _sql(database_url, "UPDATE audit_chain_head SET seq = 4")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_deleted_last_rows_are_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 5)
    _sql(database_url, "DELETE FROM audit_log WHERE seq = 5")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5 and "end" in result.reason
    assert result.checked == 4

    _sql(database_url, "DELETE FROM audit_log")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 1


def test_deleted_head_and_rows_past_the_head_are_detected(database_url):
    log = AuditLog(database_url)
    _fill(log, 3)
    rows = list(log.export())
    forged = dict(rows[-1], seq=4, prev_hash=rows[-1]["hash"])
    forged["hash"] = row_hash(forged)
    _sql(
        database_url,
        "INSERT INTO audit_log (seq, ts, action, outcome, prev_hash, hash) "
        "VALUES (4, :ts, 'predict', 'ok', :p, :h)",
        ts=datetime.now(UTC),
        p=forged["prev_hash"],
        h=forged["hash"],
    )
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "past the chain head" in result.reason

    _sql(database_url, "DELETE FROM audit_chain_head")
    result = log.verify()
    assert not result.ok and "head" in result.reason
    with pytest.raises(MedAIError, match="tampered"):
        AuditLog(database_url).record("predict")


def test_concurrent_appends_keep_one_chain(database_url):
    threads_n, per_thread = 6, 15
    errors: list[BaseException] = []
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n)

    def worker(i: int) -> None:
        log = AuditLog(database_url)  # one instance per "worker", all on the same database
        try:
            start.wait()
            for j in range(per_thread):
                seq = log.record("predict", key_id=f"{i:012x}", detail={"j": j})
                with lock:
                    results.append(seq)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    total = threads_n * per_thread
    assert sorted(results) == list(range(1, total + 1))
    result = AuditLog(database_url).verify()
    assert result.ok and result.checked == total, result


def test_export_since(database_url):
    log = AuditLog(database_url)
    _fill(log, 3)
    time.sleep(0.05)
    cut = datetime.now(UTC)
    time.sleep(0.05)
    _fill(log, 2)
    later = list(log.export(since=cut))
    assert [row["seq"] for row in later] == [4, 5]
    assert all(row["ts"].endswith("Z") for row in later)
    assert len(list(log.export())) == 5
    assert list(log.export(since=cut.replace(tzinfo=None) + timedelta(days=1))) == []
    for row in later:
        json.dumps(row)  # JSON-lines ready


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": ""}, "action"),
        ({"action": "x", "input_sha256": "not-hex"}, "input_sha256"),
        ({"action": "x", "status_code": "200"}, "status_code"),
        ({"action": "x", "detail": {"nan": float("nan")}}, "detail"),
        ({"action": "x", "detail": {"obj": object()}}, "detail"),
        ({"action": "x", "body": "PHI"}, "unknown field"),
    ],
)
def test_bad_records_are_refused_and_nothing_written(database_url, fields, message):
    log = AuditLog(database_url)
    with pytest.raises(MedAIError, match=message):
        log.record_many([fields])
    assert log.count() == 0 and log.verify().ok


@pytest.mark.parametrize(
    "detail",
    [
        {"big": "y" * 5000},  # one long value (e.g. a 5,000-character path parameter)
        {"job": "j" * 5000, "items": 3},
        {f"k{i}": "v" * 100 for i in range(100)},  # many keys
        ["x" * 100] * 100,  # not a dict
    ],
)
def test_oversized_detail_is_truncated_never_refused(database_url, detail):
    """Issue 9, finding 2: a detail over 4 KiB used to make the row fail, so the request was answered without
    its audit row. It is now cut down (sizes and sha256 kept) and the row is written."""
    log = AuditLog(database_url)
    seq = log.record("get_job", route="/v1/jobs/{job_id}", detail=detail)
    assert seq == 1 and log.verify().ok
    stored = next(log.export())["detail"]
    assert len(json.dumps(stored).encode()) <= 4096
    assert stored.get("truncated") is True
    if isinstance(detail, dict) and "items" in detail:
        assert stored["items"] == 3 and stored["job"]["bytes"] == 5002 and stored["job"]["cut"].startswith("jjj")


def test_long_and_odd_strings_hash_consistently(database_url):
    log = AuditLog(database_url)
    log.record("predict", route="/x" * 400, client="nul\x00byte", detail={1: "int key"})
    log.record("predict", model="ü" * 300)
    assert log.verify().ok
    row = next(log.export())
    assert len(row["route"]) == 512 and "\x00" not in row["client"]
    assert row["detail"] == {"1": "int key"}


def test_background_writer(database_url):
    log = AuditLog(database_url)
    writer = BackgroundAuditWriter(log, max_batch=16)
    for i in range(50):
        writer.submit("predict", key_id="0123456789ab", detail={"i": i})
    writer.flush(timeout=60)
    assert log.count() == 50
    writer.close(timeout=60)
    assert log.verify().ok
    with pytest.raises(MedAIError):
        writer.submit("predict")
    with pytest.raises(MedAIError, match="action"):
        BackgroundAuditWriter(log).submit("")


def test_background_writer_keeps_records_it_cannot_write(database_url):
    log = AuditLog(database_url)

    class Failing:
        def __init__(self) -> None:
            self.calls = 0

        def _prepare(self, event):
            return log._prepare(event)

        def _append(self, events):
            self.calls += 1
            raise RuntimeError("database down")

    failing = Failing()
    writer = BackgroundAuditWriter(failing, max_retries=1, retry_delay_s=0.01)  # type: ignore[arg-type]
    writer.submit("predict", key_id="0123456789ab")
    with pytest.raises(MedAIError, match="database down"):
        writer.flush(timeout=30)
    assert len(writer.pending) == 1 and failing.calls == 2
    with pytest.raises(MedAIError, match="unwritten"):
        writer.submit("predict")


def test_background_writer_group_commit(database_url):
    log = AuditLog(database_url)
    writer = BackgroundAuditWriter(log)
    seqs: list[int] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        seq = writer.submit("predict", wait=True, timeout=60, detail={"i": i})
        with lock:
            seqs.append(seq)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    writer.close(timeout=60)
    assert sorted(seqs) == list(range(1, 21))
    assert log.verify().ok and log.count() == 20


def test_verify_is_not_fooled_by_a_concurrent_writer(database_url):
    """A service keeps appending while someone verifies: every verify must still say the chain is intact."""
    import threading

    log = AuditLog(database_url)
    log.record("seed", key_id="k", outcome="ok")
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            log.record_many([{"action": "predict", "key_id": "k"} for _ in range(3)])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [AuditLog(database_url).verify() for _ in range(25)]
    finally:
        stop.set()
        thread.join()
    bad = [r for r in results if not r.ok]
    assert not bad, bad[0]
    assert AuditLog(database_url).verify().ok


def _append_from_another_process(url: str, n: int) -> None:
    log = AuditLog(url)
    for j in range(n):
        log.record("predict", detail={"j": j})


def test_sqlite_appenders_in_several_processes_queue_on_the_lock_file(tmp_path):
    import fcntl
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog(url)
    log.record("start")
    lock_path = tmp_path / "audit.db.write-lock"
    assert lock_path.is_file()
    with open(lock_path, "a+b") as held:  # another process holds the writers' lock: an append must wait for it
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=log.record, args=("predict",))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and log.count() == 1
        fcntl.flock(held, fcntl.LOCK_UN)
    waiting.join(10)
    assert not waiting.is_alive() and log.count() == 2
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_from_another_process, args=(url, 40)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    result = AuditLog(url).verify()
    assert result.ok and result.checked == 2 + 3 * 40, result


def test_monitoring_writes_take_the_same_write_turn_as_audit_appends(tmp_path):
    """The monitoring recorder writes to the service's database too: on SQLite it must queue on the writers'
    lock file like the audit appenders, never sleep in SQLite's busy handler while an audit commit waits."""
    import fcntl

    from medai.monitoring.store import MonitorStore

    url = f"sqlite:///{tmp_path / 'service.db'}"
    log = AuditLog(url)
    log.record("start")
    store = MonitorStore(url, secret=b"0123456789abcdef0123")
    store.add_batch("m", 1, 1, {"features": {}, "predictions": {}}, [{"record_key": "k", "score": [0.5]}])
    lock_path = tmp_path / "service.db.write-lock"
    assert lock_path.is_file()
    with open(lock_path, "a+b") as held:  # an audit append in another process holds the turn
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=store.add_batch, args=("m", 1, 1, {"features": {}, "predictions": {}},
                                                                 [{"record_key": "k2", "score": [0.4]}]))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and len(store.batches("m", 1)) == 1
        fcntl.flock(held, fcntl.LOCK_UN)
    waiting.join(10)
    assert not waiting.is_alive() and len(store.batches("m", 1)) == 2
    assert log.verify().ok

"""The blocking API (regiond.connect) against the real cluster."""

from __future__ import annotations

import datetime
import decimal
import threading
import uuid

import pytest

import regiond

from .conftest import FAR_REGION, LOCAL_REGION, PRIMARY_REGION
from .helpers import running_queries, unique, wait_until


def test_read_local_is_served_by_the_local_replica(db: regiond.Client) -> None:
    r = db.read_local("select $1::text as v, $2::int + 1 as n, null::text as nothing", ("hé", 41))
    assert r.columns == ("v", "n", "nothing")
    assert r.rows == [{"v": "hé", "n": "42", "nothing": None}]
    assert r.served_by == f"{LOCAL_REGION}/replica"
    assert r.token  # every answer has a token
    assert r.affected is None
    assert r.from_cache is False


def test_read_primary_is_served_by_the_primary(db: regiond.Client) -> None:
    r = db.read_primary("select pg_is_in_recovery() as standby")
    assert r.rows == [{"standby": "f"}]
    assert r.served_by == f"{PRIMARY_REGION}/primary"
    assert r.token


def test_write_gives_affected_and_a_newer_token_that_read_consistent_honours(
    db: regiond.Client, far_socket: str, table: str
) -> None:
    before = db.read_primary("select 1 as one")
    value = unique()
    w = db.write(f"insert into {table} (v) values ($1), ($1)", (value,))
    assert w.affected == 2
    assert w.served_by == f"{PRIMARY_REGION}/primary"
    assert regiond.token_cmp(w.token, before.token) == 1
    assert regiond.token_cmp(before.token, w.token) == -1
    assert regiond.token_cmp(w.token, w.token) == 0

    # Read-your-writes here and in another region, with the write's token only.
    sql = f"select count(*) as n from {table} where v = $1"
    assert db.read_consistent(w.token, sql, (value,)).rows == [{"n": "2"}]
    with regiond.connect(far_socket) as far:
        r = far.read_consistent(w.token, sql, (value,))
        assert r.rows == [{"n": "2"}]
        assert r.served_by in (f"{FAR_REGION}/replica", f"{PRIMARY_REGION}/primary")
        assert r.route_reason  # says why it went there


def test_token_cmp_refuses_what_cannot_be_compared() -> None:
    assert regiond.token_cmp("", "") == 0
    with pytest.raises(ValueError, match="cannot be compared"):
        regiond.token_cmp("not a token", "")


def test_read_consistent_with_a_malformed_token_is_an_error(db: regiond.Client) -> None:
    with pytest.raises(regiond.RegiondError):
        db.read_consistent("garbage", "select 1")


def test_cached_read_hits_then_a_write_with_the_key_invalidates_it(db: regiond.Client, table: str) -> None:
    key = unique("py-key")
    w = db.write(f"insert into {table} (v) values ($1) returning id", ("first",))
    row_id = w.rows[0]["id"]
    sql = f"select v from {table} where id = $1"
    # The miss below reads the local replica: let it have the row first, or the
    # cache would (correctly) keep "no row".
    wait_until(lambda: db.read_local(sql, (row_id,)).rows != [], "the row on the local replica")

    miss = db.cached_read(key, sql, (row_id,), ttl_seconds=300)
    assert miss.rows == [{"v": "first"}]
    assert miss.from_cache is False
    assert miss.served_by == f"{LOCAL_REGION}/replica"
    hit = db.cached_read(key, sql, (row_id,), ttl_seconds=300)
    assert hit.rows == [{"v": "first"}]
    assert hit.from_cache is True
    assert hit.served_by == "cache:local"

    u = db.write(f"update {table} set v = $1 where id = $2", ("second", row_id), invalidate_keys=[key])
    assert u.affected == 1
    after = db.cached_read(key, sql, (row_id,), ttl_seconds=300)
    assert after.rows == [{"v": "second"}]  # fenced: never the old value again
    assert after.from_cache is False


def test_sql_error_carries_the_sqlstate(db: regiond.Client) -> None:
    with pytest.raises(regiond.RegiondError) as e:
        db.read_local("select * from rgd_py_no_such_table")
    assert e.value.sqlstate == "42P01"
    assert "rgd_py_no_such_table" in str(e.value)


def test_a_write_sent_as_a_read_fails_with_25006_and_changes_nothing(db: regiond.Client, table: str) -> None:
    value = unique()
    for read in (db.read_local, db.read_primary):
        with pytest.raises(regiond.RegiondError) as e:
            read(f"insert into {table} (v) values ($1)", (value,))
        assert e.value.sqlstate == "25006"
    assert db.read_primary(f"select count(*) as n from {table} where v = $1", (value,)).rows == [{"n": "0"}]


def test_a_call_past_its_deadline_times_out(local_socket: str) -> None:
    with regiond.connect(local_socket, timeout_ms=200) as db:
        with pytest.raises(regiond.RegiondError, match="timed out"):
            db.read_local("select pg_sleep(5)")
        # The client is still usable afterwards.
        db.set_timeout_ms(30000)
        assert db.read_local("select 1 as one").rows == [{"one": "1"}]


def test_parameters_are_sent_as_postgres_text(db: regiond.Client) -> None:
    r = db.read_local(
        "select $1::bool as b, $2::bool as f, $3::int8 as i, $4::float8 as x, $5::numeric as d, "
        "$6::date as day, $7::timestamptz = '2024-05-06 07:08:09.5+00' as ts_ok, $8::bytea as raw, "
        "$9::text is null as null_ok, $10::uuid as u, $11::text as t",
        (True, False, -(2**62), 0.1, decimal.Decimal("12.50"), datetime.date(2024, 5, 6),
         datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=datetime.timezone.utc), b"\x00\x01\xff",
         None, uuid.UUID(int=1), "it's \\ \"quoted\""),
    )
    assert r.rows == [{
        "b": "t", "f": "f", "i": str(-(2**62)), "x": "0.1", "d": "12.50", "day": "2024-05-06", "ts_ok": "t",
        "raw": "\\x0001ff", "null_ok": "t", "u": "00000000-0000-0000-0000-000000000001", "t": "it's \\ \"quoted\"",
    }]


def test_unsupported_parameters_are_refused_before_sending(db: regiond.Client) -> None:
    with pytest.raises(TypeError, match="parameter \\$1"):
        db.read_local("select $1", (object(),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        db.read_local("select $1", "abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        db.read_local("select $1", ("a\0b",))


def test_health_lists_every_endpoint(db: regiond.Client) -> None:
    rows = db.health()
    by_region = {(h.region, h.role) for h in rows}
    assert (PRIMARY_REGION, "primary") in by_region
    assert (LOCAL_REGION, "replica") in by_region
    assert (FAR_REGION, "replica") in by_region
    assert all(isinstance(h, regiond.HealthRow) for h in rows)
    primary = next(h for h in rows if h.role == "primary")
    assert primary.healthy is True


def test_connect_to_no_daemon_says_so(tmp_path: object) -> None:
    with pytest.raises(regiond.RegiondError, match="not running"):
        regiond.connect(f"{tmp_path}/none.sock")


def test_a_closed_client_refuses_calls(local_socket: str) -> None:
    with regiond.connect(local_socket) as db:
        assert db.read_local("select 1 as one").rows == [{"one": "1"}]
    assert db.closed
    db.close()  # idempotent
    with pytest.raises(regiond.RegiondError, match="closed"):
        db.read_local("select 1")


def test_one_client_shared_by_threads(db: regiond.Client) -> None:
    errors: list[BaseException] = []
    answers: dict[tuple[int, int], str] = {}

    def worker(t: int) -> None:
        try:
            for i in range(40):
                r = db.read_local("select $1::text as v", (f"{t}:{i}",))
                answers[(t, i)] = r.rows[0]["v"] or ""
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert answers == {(t, i): f"{t}:{i}" for t in range(8) for i in range(40)}


def test_a_blocking_call_releases_the_gil(db: regiond.Client, local_socket: str) -> None:
    # While one thread waits inside rgd_read_local, this thread runs Python and
    # sees that query running on the server: impossible if the call held the GIL.
    marker = unique("gil")
    result: list[object] = []
    sleeper = threading.Thread(target=lambda: result.append(db.read_local(f"select pg_sleep(3) /* {marker} */")))
    sleeper.start()
    try:
        with regiond.connect(local_socket) as observer:
            wait_until(lambda: running_queries(observer, marker) == 1, "the sleeping query seen from another thread")
            assert sleeper.is_alive()
    finally:
        sleeper.join()
    assert len(result) == 1

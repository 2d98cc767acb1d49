"""The asyncio API (regiond.aio) against the real cluster. Each test runs its
coroutine with an upper bound (helpers.run), so a broken event-loop path fails
instead of hanging."""

from __future__ import annotations

import asyncio

import pytest

import regiond
import regiond.aio

from .conftest import FAR_REGION, LOCAL_REGION, PRIMARY_REGION
from .helpers import async_wait_until, run, running_queries, unique


def test_every_verb(local_socket: str, far_socket: str, table: str) -> None:
    async def body() -> None:
        async with await regiond.aio.connect(local_socket) as db:
            r = await db.read_local("select $1::text as v, null::int as n", ("hé",))
            assert r.rows == [{"v": "hé", "n": None}]
            assert r.columns == ("v", "n")
            assert r.served_by == f"{LOCAL_REGION}/replica"
            assert r.token and r.affected is None and r.from_cache is False

            p = await db.read_primary("select pg_is_in_recovery() as standby")
            assert p.rows == [{"standby": "f"}]
            assert p.served_by == f"{PRIMARY_REGION}/primary"

            value = unique()
            w = await db.write(f"insert into {table} (v) values ($1) returning id", (value,))
            assert w.affected == 1
            assert w.served_by == f"{PRIMARY_REGION}/primary"
            assert regiond.token_cmp(w.token, p.token) == 1
            row_id = w.rows[0]["id"]

            sql = f"select v from {table} where id = $1"
            assert (await db.read_consistent(w.token, sql, (row_id,))).rows == [{"v": value}]
            async with await regiond.aio.connect(far_socket) as far:
                c = await far.read_consistent(w.token, sql, (row_id,))
                assert c.rows == [{"v": value}]
                assert c.served_by in (f"{FAR_REGION}/replica", f"{PRIMARY_REGION}/primary")

            key = unique("py-akey")
            await async_wait_until_visible(db, sql, row_id)
            miss = await db.cached_read(key, sql, (row_id,), ttl_seconds=300)
            assert miss.rows == [{"v": value}] and miss.from_cache is False
            hit = await db.cached_read(key, sql, (row_id,), ttl_seconds=300)
            assert hit.rows == [{"v": value}] and hit.from_cache is True and hit.served_by == "cache:local"
            await db.write(f"update {table} set v = $1 where id = $2", ("changed", row_id), invalidate_keys=(key,))
            after = await db.cached_read(key, sql, (row_id,), ttl_seconds=300)
            assert after.rows == [{"v": "changed"}] and after.from_cache is False

            health = await db.health()
            assert {(h.region, h.role) for h in health} >= {
                (PRIMARY_REGION, "primary"), (LOCAL_REGION, "replica"), (FAR_REGION, "replica")}
            assert db.calls_pending() == 0

    run(body())


async def async_wait_until_visible(db: regiond.aio.AsyncClient, sql: str, row_id: str | None) -> None:
    # Poll the replica (a read per turn) until the row is there: the miss that
    # follows must not cache "no row".
    for _ in range(4000):
        if (await db.read_local(sql, (row_id,))).rows:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the row never reached the local replica")


def test_errors_carry_sqlstate(local_socket: str, table: str) -> None:
    async def body() -> None:
        async with await regiond.aio.connect(local_socket) as db:
            with pytest.raises(regiond.RegiondError) as e:
                await db.read_local("select * from rgd_py_no_such_table")
            assert e.value.sqlstate == "42P01"
            value = unique()
            with pytest.raises(regiond.RegiondError) as e:
                await db.read_local(f"insert into {table} (v) values ($1)", (value,))
            assert e.value.sqlstate == "25006"
            n = await db.read_primary(f"select count(*) as n from {table} where v = $1", (value,))
            assert n.rows == [{"n": "0"}]
            with pytest.raises(regiond.RegiondError):
                await db.read_consistent("garbage", "select 1")  # an error found at once, still collected

    run(body())


def test_a_thousand_concurrent_reads_each_get_their_own_answer(local_socket: str) -> None:
    async def body() -> None:
        async with await regiond.aio.connect(local_socket) as db:
            results = await asyncio.gather(*(db.read_local("select $1::int * 2 as n", (i,)) for i in range(1000)))
            assert [r.rows for r in results] == [[{"n": str(2 * i)}] for i in range(1000)]
            assert {r.served_by for r in results} == {f"{LOCAL_REGION}/replica"}
            assert db.calls_pending() == 0

    run(body())


def test_a_call_past_its_deadline_times_out(local_socket: str) -> None:
    async def body() -> None:
        async with await regiond.aio.connect(local_socket, timeout_ms=200) as db:
            with pytest.raises(regiond.RegiondError, match="timed out"):
                await db.read_local("select pg_sleep(5)")
            db.set_timeout_ms(30000)
            assert (await db.read_local("select 1 as one")).rows == [{"one": "1"}]

    run(body())


def test_cancelling_the_task_cancels_the_call(local_socket: str) -> None:
    marker = unique("cancel")

    async def body() -> None:
        with regiond.connect(local_socket) as observer:
            async with await regiond.aio.connect(local_socket, timeout_ms=0) as db:
                task = asyncio.create_task(db.read_local(f"select pg_sleep(120) /* {marker} */"))
                await async_wait_until(lambda: running_queries(observer, marker) == 1, "the query running")
                assert db.calls_pending() == 1
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # rgd_cancel finished the call; the reader collected and dropped it.
                await async_wait_until(lambda: db.calls_pending() == 0, "the cancelled call collected")
                # And the daemon stopped the query (it would otherwise sleep 120 s).
                await async_wait_until(lambda: running_queries(observer, marker) == 0, "the query stopped")
                assert (await db.read_local("select 1 as one")).rows == [{"one": "1"}]

    run(body())


def test_wait_for_timing_out_cancels_the_call(local_socket: str) -> None:
    marker = unique("waitfor")

    async def body() -> None:
        with regiond.connect(local_socket) as observer:
            async with await regiond.aio.connect(local_socket, timeout_ms=0) as db:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(db.read_local(f"select pg_sleep(120) /* {marker} */"), 0.5)
                await async_wait_until(lambda: db.calls_pending() == 0, "the cancelled call collected")
                await async_wait_until(lambda: running_queries(observer, marker) == 0, "the query stopped")

    run(body())


def test_the_loop_sleeps_while_waiting(local_socket: str) -> None:
    # The descriptor is level-triggered: a reader that left a result behind, or
    # stayed registered with nothing to do, would be called thousands of times
    # during this one 0.3 s query. A few wake-ups are the library's own work.
    async def body() -> None:
        async with await regiond.aio.connect(local_socket) as db:
            wakeups = 0
            original = db._on_readable

            def counting() -> None:
                nonlocal wakeups
                wakeups += 1
                original()

            db._on_readable = counting  # type: ignore[method-assign,assignment]
            r = await db.read_local("select pg_sleep(0.3) is null as slept")
            assert r.rows == [{"slept": "f"}]
            assert 1 <= wakeups <= 20
            # Idle: the descriptor is out of the loop.
            loop = asyncio.get_running_loop()
            assert loop.remove_reader(db._fd) is False

    run(body())


def test_close_fails_calls_in_flight_and_removes_the_reader(local_socket: str) -> None:
    async def body() -> None:
        db = await regiond.aio.connect(local_socket)
        fd = db._fd
        task = asyncio.create_task(db.read_local("select pg_sleep(2)"))
        await async_wait_until(lambda: db.calls_pending() == 1, "the call started")
        await db.close()
        with pytest.raises(regiond.RegiondError, match="closed"):
            await task
        assert asyncio.get_running_loop().remove_reader(fd) is False
        with pytest.raises(regiond.RegiondError, match="closed"):
            await db.read_local("select 1")

    run(body())


def test_connect_to_no_daemon_says_so(tmp_path: object) -> None:
    async def body() -> None:
        with pytest.raises(regiond.RegiondError, match="not running"):
            await regiond.aio.connect(f"{tmp_path}/none.sock")

    run(body())

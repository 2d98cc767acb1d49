"""Helpers shared by the tests: polling with a deadline (never a sleep as
synchronisation), unique values, running a coroutine with an upper bound."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

TABLE = "rgd_py_it"
DEADLINE_S = 20.0  # generous: the machine is shared; a healthy cluster takes milliseconds


def unique(prefix: str = "py") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.005)  # a poll interval, not the synchronisation itself


async def async_wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        await asyncio.sleep(0.005)


def run(coro: Awaitable[T], bound_s: float = 60.0) -> T:
    """asyncio.run with an upper bound, so a broken event-loop path (a reader
    never registered, a future never resolved) fails instead of hanging."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(coro, bound_s)
        except asyncio.TimeoutError:
            raise AssertionError(f"the test's coroutine did not finish within {bound_s:.0f} s") from None

    return asyncio.run(bounded())


def running_queries(db: object, marker: str) -> int:
    """Backends on the replica behind `db` (a blocking Client) running a query that contains marker."""
    r = db.read_local(  # type: ignore[attr-defined]
        "select count(*) as n from pg_stat_activity "
        "where state = 'active' and pid <> pg_backend_pid() and strpos(query, $1) > 0",
        (marker,),
    )
    return int(r.rows[0]["n"])

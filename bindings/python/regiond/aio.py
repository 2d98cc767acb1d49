"""The asyncio API, on libregiond's event-loop interface.

Each call starts with rgd_start_* (never waits for the daemon) and gets a
future keyed by its call id. The client's one descriptor, rgd_event_fd, is
registered with the loop's add_reader while calls are pending; when it is
readable the reader collects (rgd_collect) until nothing is left, because the
descriptor is level-triggered: a result left behind would wake the loop again
at once, forever. Cancelling an awaiting task cancels its call (rgd_cancel).

    async with await regiond.aio.connect("/run/regiond/regiond.sock") as db:
        r = await db.read_local("select $1::int + 1 as n", (41,))
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType

from ._handle import check_timeout, check_ttl, open_handle
from ._lib import CallId, ClientPtr, lib
from ._params import Param, encode_text, param_array, text_array
from ._result import HealthRow, RegiondError, Result, health_rows, take_result

__all__ = ["AsyncClient", "connect"]


async def connect(socket: str | os.PathLike[str] | None = None, timeout_ms: int | None = None) -> AsyncClient:
    """Connects to the regiond daemon at `socket` (see regiond.connect).

    The handshake runs in the loop's default executor: with a stuck daemon it
    may take seconds, which must not stall the loop.
    """
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(None, open_handle, socket, timeout_ms)
    try:
        handle = await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_disconnect_if_opened)
        raise
    try:
        return AsyncClient(handle, loop)
    except BaseException:
        lib.rgd_disconnect(handle)
        raise


def _disconnect_if_opened(opening: asyncio.Future[ClientPtr]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        lib.rgd_disconnect(opening.result())


class AsyncClient:
    """A connection to regiond for one asyncio event loop (the one that connected)."""

    def __init__(self, handle: ClientPtr, loop: asyncio.AbstractEventLoop) -> None:
        fd = lib.rgd_event_fd(handle)
        if fd < 0:
            raise RegiondError("libregiond could not create the client's event descriptor (out of descriptors?)")
        self._handle: ClientPtr | None = handle
        self._loop = loop
        self._fd = fd
        self._calls: dict[int, asyncio.Future[Result]] = {}
        self._watching = False
        self._collected = CallId()  # rgd_collect's out parameter, reused
        self._finalizer = weakref.finalize(self, lib.rgd_disconnect, handle)

    # -- queries (coroutines) ---------------------------------------------

    async def read_local(self, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads from the nearest healthy replica (eventually consistent)."""
        n, values = param_array(params)
        q = encode_text(sql, "sql")
        return await self._start(lambda h: lib.rgd_start_read_local(h, q, n, values))

    async def read_primary(self, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads from the primary (strongly consistent)."""
        n, values = param_array(params)
        q = encode_text(sql, "sql")
        return await self._start(lambda h: lib.rgd_start_read_primary(h, q, n, values))

    async def write(self, sql: str, params: Sequence[Param] = (), invalidate_keys: Sequence[str] = ()) -> Result:
        """Writes on the primary, then invalidates the cache keys everywhere.
        Cancelling it decides only what the caller is told: the write may still commit."""
        n, values = param_array(params)
        nkeys, keys = text_array(invalidate_keys, "invalidate_keys")
        q = encode_text(sql, "sql")
        return await self._start(lambda h: lib.rgd_start_write(h, q, n, values, nkeys, keys))

    async def read_consistent(self, token: str, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads data at least as new as the answer that returned `token`."""
        n, values = param_array(params)
        t = encode_text(token, "token")
        q = encode_text(sql, "sql")
        return await self._start(lambda h: lib.rgd_start_read_consistent(h, t, q, n, values))

    async def cached_read(self, key: str, sql: str, params: Sequence[Param] = (), ttl_seconds: int = 0) -> Result:
        """This host's cache, then the region's Redis, then the local replica."""
        n, values = param_array(params)
        k = encode_text(key, "key")
        q = encode_text(sql, "sql")
        ttl = check_ttl(ttl_seconds)
        return await self._start(lambda h: lib.rgd_start_cached_read(h, k, ttl, q, n, values))

    async def health(self) -> list[HealthRow]:
        """One row per endpoint. Read from the state segment, with no round trip,
        so it runs inline (libregiond has no rgd_start_health)."""
        return health_rows(take_result(lib.rgd_health(self._live_handle())))

    # -- settings, introspection, lifetime ----------------------------------

    def set_timeout_ms(self, timeout_ms: int) -> None:
        """Deadline of each call started later, in milliseconds; 0: none."""
        lib.rgd_set_timeout_ms(self._live_handle(), check_timeout(timeout_ms))

    def calls_pending(self) -> int:
        """Calls started and not yet collected by the reader (rgd_calls_pending)."""
        return int(lib.rgd_calls_pending(self._live_handle()))

    @property
    def closed(self) -> bool:
        return self._handle is None

    async def close(self) -> None:
        """Removes the descriptor from the loop and disconnects. Calls still in
        flight fail with RegiondError. Idempotent."""
        if self._handle is None:
            return
        self._unwatch()  # before rgd_disconnect closes the descriptor
        self._handle = None
        calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(RegiondError("the regiond client was closed while this call was in flight"))
        self._finalizer()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- internals --------------------------------------------------------

    def _live_handle(self) -> ClientPtr:
        if self._handle is None:
            raise RegiondError("the regiond client is closed: connect again")
        return self._handle

    def _start(self, start: Callable[[ClientPtr], int]) -> asyncio.Future[Result]:
        handle = self._live_handle()
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("an AsyncClient is bound to the event loop that connected it; connect in this loop")
        call_id = start(handle)
        if call_id == 0:
            raise MemoryError("libregiond could not start the call (out of memory)")
        future: asyncio.Future[Result] = self._loop.create_future()
        self._calls[call_id] = future
        future.add_done_callback(functools.partial(self._cancel_if_cancelled, call_id))
        self._watch()
        return future

    def _cancel_if_cancelled(self, call_id: int, future: asyncio.Future[Result]) -> None:
        # A cancelled awaiting task cancels the future it awaits: tell the library
        # (and through it the daemon) to stop; its "cancelled" result is then
        # collected and dropped like any other result nobody waits for.
        if not future.cancelled():
            return
        self._calls.pop(call_id, None)
        if self._handle is not None:
            lib.rgd_cancel(self._handle, call_id)
            if lib.rgd_calls_pending(self._handle) > 0:
                self._watch()  # the "cancelled" result still has to be collected

    def _watch(self) -> None:
        if not self._watching:
            self._loop.add_reader(self._fd, self._on_readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _on_readable(self) -> None:
        handle = self._handle
        if handle is None:
            return
        collected = self._collected
        # Level-triggered: collect until NULL, or the loop wakes again at once.
        while True:
            ptr = lib.rgd_collect(handle, ctypes.byref(collected))
            if not ptr:
                break
            future = self._calls.pop(collected.value, None)
            if future is None or future.done():
                lib.rgd_free(ptr)  # cancelled: nobody waits for it
                continue
            try:
                future.set_result(take_result(ptr))
            except RegiondError as e:
                future.set_exception(e)
            except MemoryError as e:
                future.set_exception(e)
        # Idle, the descriptor leaves the loop: nothing can wake it for nothing.
        if lib.rgd_calls_pending(handle) == 0:
            self._unwatch()

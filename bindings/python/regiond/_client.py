"""The blocking API: one call, one answer, on libregiond's blocking functions.

ctypes releases the GIL for the whole C call, so several threads sharing one
Client wait for the daemon in parallel (libregiond allows any number of
threads per client).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

from ._handle import check_timeout, check_ttl, open_handle
from ._lib import ClientPtr, ResultPtr, lib
from ._params import Param, encode_text, param_array, text_array
from ._result import HealthRow, RegiondError, Result, health_rows, take_result

__all__ = ["Client", "connect"]


def connect(socket: str | os.PathLike[str] | None = None, timeout_ms: int | None = None) -> Client:
    """Connects to the regiond daemon at `socket`.

    socket None means $REGIOND_SOCKET, else /run/regiond/regiond.sock.
    timeout_ms is the deadline of each call (libregiond's default: 30000; 0: none).
    Raises RegiondError (e.g. "daemon not running at PATH").
    """
    return Client(open_handle(socket, timeout_ms))


class Client:
    """A connection to regiond, usable from any number of threads at once."""

    def __init__(self, handle: ClientPtr) -> None:
        self._handle: ClientPtr | None = handle
        # rgd_disconnect must not race with calls still running on the client:
        # close() waits until the calls in flight have returned.
        self._state = threading.Condition()
        self._in_flight = 0
        # A client dropped without close() still disconnects (once).
        self._finalizer = weakref.finalize(self, lib.rgd_disconnect, handle)

    # -- queries --------------------------------------------------------

    def read_local(self, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads from the nearest healthy replica (eventually consistent)."""
        n, values = param_array(params)
        q = encode_text(sql, "sql")
        return self._call(lambda h: lib.rgd_read_local(h, q, n, values))

    def read_primary(self, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads from the primary (strongly consistent)."""
        n, values = param_array(params)
        q = encode_text(sql, "sql")
        return self._call(lambda h: lib.rgd_read_primary(h, q, n, values))

    def write(self, sql: str, params: Sequence[Param] = (), invalidate_keys: Sequence[str] = ()) -> Result:
        """Writes on the primary, then invalidates the cache keys everywhere; the
        result carries the write's token and affected."""
        n, values = param_array(params)
        nkeys, keys = text_array(invalidate_keys, "invalidate_keys")
        q = encode_text(sql, "sql")
        return self._call(lambda h: lib.rgd_write(h, q, n, values, nkeys, keys))

    def read_consistent(self, token: str, sql: str, params: Sequence[Param] = ()) -> Result:
        """Reads data at least as new as the answer that returned `token` ("" waits for nothing)."""
        n, values = param_array(params)
        t = encode_text(token, "token")
        q = encode_text(sql, "sql")
        return self._call(lambda h: lib.rgd_read_consistent(h, t, q, n, values))

    def cached_read(self, key: str, sql: str, params: Sequence[Param] = (), ttl_seconds: int = 0) -> Result:
        """This host's cache, then the region's Redis, then the local replica.
        ttl_seconds 0 uses the daemon's default."""
        n, values = param_array(params)
        k = encode_text(key, "key")
        q = encode_text(sql, "sql")
        ttl = check_ttl(ttl_seconds)
        return self._call(lambda h: lib.rgd_cached_read(h, k, ttl, q, n, values))

    def health(self) -> list[HealthRow]:
        """One row per endpoint, read from the daemon's state segment (no round trip)."""
        return health_rows(self._call(lib.rgd_health))

    # -- settings and lifetime -------------------------------------------

    def set_timeout_ms(self, timeout_ms: int) -> None:
        """Deadline of each later call in milliseconds; 0: no client-side deadline."""
        check_timeout(timeout_ms)
        with self._using() as h:
            lib.rgd_set_timeout_ms(h, timeout_ms)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Waits for calls in flight on other threads, then disconnects. Idempotent."""
        with self._state:
            if self._handle is None:
                return
            self._handle = None  # no new call starts from here on
            self._state.wait_for(lambda: self._in_flight == 0)
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------

    @contextmanager
    def _using(self) -> Iterator[ClientPtr]:
        with self._state:
            handle = self._handle
            if handle is None:
                raise RegiondError("the regiond client is closed: connect again")
            self._in_flight += 1
        try:
            yield handle
        finally:
            with self._state:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._state.notify_all()

    def _call(self, fn: Callable[[ClientPtr], ResultPtr]) -> Result:
        with self._using() as h:
            ptr = fn(h)
        return take_result(ptr)


"""Opening a libregiond client handle, shared by the blocking and asyncio APIs."""

from __future__ import annotations

import ctypes
import os

from ._lib import ClientPtr, lib
from ._params import encode_text
from ._result import RegiondError

__all__ = ["open_handle", "check_timeout", "check_ttl"]


def check_timeout(timeout_ms: int) -> int:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
        raise TypeError(f"timeout_ms must be an int (milliseconds), not {type(timeout_ms).__name__}")
    if not 0 <= timeout_ms <= 0xFFFFFFFF:
        raise ValueError(f"timeout_ms must be between 0 (no client deadline) and {0xFFFFFFFF}, not {timeout_ms}")
    return timeout_ms


def open_handle(socket: str | os.PathLike[str] | None, timeout_ms: int | None) -> ClientPtr:
    """rgd_connect; socket None means $REGIOND_SOCKET, else /run/regiond/regiond.sock."""
    path = None if socket is None else encode_text(os.fspath(socket), "socket path")
    if timeout_ms is not None:
        check_timeout(timeout_ms)
    errbuf = ctypes.create_string_buffer(1024)
    handle = lib.rgd_connect(path, errbuf, len(errbuf))
    if not handle:
        message = errbuf.value.decode("utf-8", "replace") or "rgd_connect failed without a message"
        raise RegiondError(message)
    if timeout_ms is not None:
        lib.rgd_set_timeout_ms(handle, timeout_ms)
    return handle


def check_ttl(ttl_seconds: int) -> int:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise TypeError(f"ttl_seconds must be an int (seconds), not {type(ttl_seconds).__name__}")
    if not 0 <= ttl_seconds <= 0xFFFFFFFF:
        raise ValueError(f"ttl_seconds must be between 0 (the daemon's default) and {0xFFFFFFFF}, not {ttl_seconds}")
    return ttl_seconds

"""Finds libregiond.so and declares the exact C prototype of every rgd_* function.

ctypes guesses int for anything undeclared, which truncates 64-bit pointers and
call ids silently; so every function used anywhere in the package is declared
here, argtypes and restype, from <regiond/client.h>.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import POINTER, c_char_p, c_int, c_longlong, c_size_t, c_uint, c_ulonglong
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = ["RegiondLibraryError", "LibRegiond", "lib", "library_path", "CallId", "ClientPtr", "ResultPtr", "CStrings"]

SONAME = "libregiond.so.0"


class RegiondLibraryError(ImportError):
    """libregiond.so could not be found or loaded; the message names every place tried."""


class _Client(ctypes.Structure):
    """Opaque struct rgd_client."""


class _Result(ctypes.Structure):
    """Opaque struct rgd_result."""


# Distinct pointer types, so a result can never be passed where a client is due.
if TYPE_CHECKING:
    ClientPtr: TypeAlias = "ctypes._Pointer[_Client]"
    ResultPtr: TypeAlias = "ctypes._Pointer[_Result]"
    CStrings: TypeAlias = "ctypes.Array[c_char_p] | None"  # what is passed as const char* const*
else:
    ClientPtr = POINTER(_Client)
    ResultPtr = POINTER(_Result)
CallId = c_ulonglong  # typedef unsigned long long rgd_call_id
CStringArray = POINTER(c_char_p)  # const char* const*


class LibRegiond(Protocol):
    """The functions of <regiond/client.h> as ctypes calls them (for type checkers).

    Strings are bytes (None for NULL); `const char* const*` is a ctypes array
    of c_char_p or None; an rgd_call_id is an int.
    """

    def rgd_connect(self, socket_path: bytes | None, errbuf: ctypes.Array[ctypes.c_char], errlen: int) -> ClientPtr: ...
    def rgd_disconnect(self, c: ClientPtr) -> None: ...
    def rgd_set_timeout_ms(self, c: ClientPtr, ms: int) -> None: ...

    def rgd_read_local(self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings) -> ResultPtr: ...
    def rgd_read_primary(self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings) -> ResultPtr: ...
    def rgd_write(
        self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings, nkeys: int, keys: CStrings
    ) -> ResultPtr: ...
    def rgd_read_consistent(
        self, c: ClientPtr, token: bytes, sql: bytes, nparams: int, params: CStrings
    ) -> ResultPtr: ...
    def rgd_cached_read(
        self, c: ClientPtr, key: bytes, ttl_seconds: int, sql: bytes, nparams: int, params: CStrings
    ) -> ResultPtr: ...
    def rgd_health(self, c: ClientPtr) -> ResultPtr: ...

    def rgd_start_read_local(self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings) -> int: ...
    def rgd_start_read_primary(self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings) -> int: ...
    def rgd_start_write(
        self, c: ClientPtr, sql: bytes, nparams: int, params: CStrings, nkeys: int, keys: CStrings
    ) -> int: ...
    def rgd_start_read_consistent(
        self, c: ClientPtr, token: bytes, sql: bytes, nparams: int, params: CStrings
    ) -> int: ...
    def rgd_start_cached_read(
        self, c: ClientPtr, key: bytes, ttl_seconds: int, sql: bytes, nparams: int, params: CStrings
    ) -> int: ...
    def rgd_event_fd(self, c: ClientPtr) -> int: ...
    def rgd_collect(self, c: ClientPtr, id: Any) -> ResultPtr: ...  # id: byref(CallId()) or None
    def rgd_calls_pending(self, c: ClientPtr) -> int: ...
    def rgd_cancel(self, c: ClientPtr, id: int) -> int: ...

    def rgd_ok(self, r: ResultPtr) -> int: ...
    def rgd_error(self, r: ResultPtr) -> bytes | None: ...
    def rgd_sqlstate(self, r: ResultPtr) -> bytes | None: ...
    def rgd_nrows(self, r: ResultPtr) -> int: ...
    def rgd_ncols(self, r: ResultPtr) -> int: ...
    def rgd_colname(self, r: ResultPtr, col: int) -> bytes | None: ...
    def rgd_value(self, r: ResultPtr, row: int, col: int) -> bytes | None: ...
    def rgd_affected(self, r: ResultPtr) -> int: ...
    def rgd_token(self, r: ResultPtr) -> bytes | None: ...
    def rgd_token_cmp(self, a: bytes | None, b: bytes | None) -> int: ...
    def rgd_served_by(self, r: ResultPtr) -> bytes | None: ...
    def rgd_route_reason(self, r: ResultPtr) -> bytes | None: ...
    def rgd_free(self, r: ResultPtr) -> None: ...


def _checkout_library() -> Path | None:
    """build/libclient/libregiond.so.0 of the repository this package sits in, if any.

    Running from the checkout (PYTHONPATH=bindings/python) must pick the build
    of the same tree: a client from another build is refused by the daemon.
    """
    repo = Path(__file__).resolve().parents[3]
    if not (repo / "libclient" / "include" / "regiond" / "client.h").is_file():
        return None  # installed elsewhere (site-packages): not a checkout
    return repo / "build" / "libclient" / SONAME


def _load() -> tuple[ctypes.CDLL, str]:
    tried: list[str] = []

    def attempt(path: str, why: str) -> ctypes.CDLL | None:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{why}: {path} ({e})")
            return None

    # An explicit choice is binding: falling back to some other build would
    # talk to the daemon with a library the user did not ask for.
    explicit = os.environ.get("REGIOND_LIB")
    if explicit:
        handle = attempt(explicit, "$REGIOND_LIB")
        if handle is None:
            raise RegiondLibraryError("cannot load libregiond: " + "; ".join(tried) + ". Fix or unset REGIOND_LIB.")
        return handle, explicit

    build_dir = os.environ.get("REGIOND_BUILD_DIR")
    if build_dir:
        path = str(Path(build_dir) / "libclient" / SONAME)
        handle = attempt(path, "$REGIOND_BUILD_DIR")
        if handle is None:
            raise RegiondLibraryError(
                "cannot load libregiond: " + "; ".join(tried) + ". Build it (`meson compile -C "
                f"{build_dir}`) or unset REGIOND_BUILD_DIR."
            )
        return handle, path

    checkout = _checkout_library()
    if checkout is not None:
        if checkout.exists():
            handle = attempt(str(checkout), "the checkout's build")
            if handle is not None:
                return handle, str(checkout)
        else:
            tried.append(f"the checkout's build: {checkout} (not built)")

    found = ctypes.util.find_library("regiond")
    if found:
        handle = attempt(found, "the system's libraries (ctypes.util.find_library)")
        if handle is not None:
            return handle, found
    else:
        tried.append("the system's libraries: ctypes.util.find_library('regiond') found nothing")

    raise RegiondLibraryError(
        "cannot find libregiond: tried "
        + "; ".join(tried)
        + ". Set REGIOND_LIB to the path of libregiond.so.0, or REGIOND_BUILD_DIR to a meson build "
        "directory, or run `meson install` so the system's linker finds it."
    )


def _declare(cdll: ctypes.CDLL) -> None:
    def proto(name: str, restype: object, *argtypes: object) -> None:
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            raise RegiondLibraryError(
                f"{library_path} has no {name}: it is older than this package; build the same tree"
            ) from None
        fn.restype = restype
        fn.argtypes = argtypes

    proto("rgd_connect", ClientPtr, c_char_p, c_char_p, c_size_t)
    proto("rgd_disconnect", None, ClientPtr)
    proto("rgd_set_timeout_ms", None, ClientPtr, c_uint)

    proto("rgd_read_local", ResultPtr, ClientPtr, c_char_p, c_int, CStringArray)
    proto("rgd_read_primary", ResultPtr, ClientPtr, c_char_p, c_int, CStringArray)
    proto("rgd_write", ResultPtr, ClientPtr, c_char_p, c_int, CStringArray, c_int, CStringArray)
    proto("rgd_read_consistent", ResultPtr, ClientPtr, c_char_p, c_char_p, c_int, CStringArray)
    proto("rgd_cached_read", ResultPtr, ClientPtr, c_char_p, c_uint, c_char_p, c_int, CStringArray)
    proto("rgd_health", ResultPtr, ClientPtr)

    proto("rgd_start_read_local", CallId, ClientPtr, c_char_p, c_int, CStringArray)
    proto("rgd_start_read_primary", CallId, ClientPtr, c_char_p, c_int, CStringArray)
    proto("rgd_start_write", CallId, ClientPtr, c_char_p, c_int, CStringArray, c_int, CStringArray)
    proto("rgd_start_read_consistent", CallId, ClientPtr, c_char_p, c_char_p, c_int, CStringArray)
    proto("rgd_start_cached_read", CallId, ClientPtr, c_char_p, c_uint, c_char_p, c_int, CStringArray)
    proto("rgd_event_fd", c_int, ClientPtr)
    proto("rgd_collect", ResultPtr, ClientPtr, POINTER(CallId))
    proto("rgd_calls_pending", c_size_t, ClientPtr)
    proto("rgd_cancel", c_int, ClientPtr, CallId)

    proto("rgd_ok", c_int, ResultPtr)
    proto("rgd_error", c_char_p, ResultPtr)
    proto("rgd_sqlstate", c_char_p, ResultPtr)
    proto("rgd_nrows", c_int, ResultPtr)
    proto("rgd_ncols", c_int, ResultPtr)
    proto("rgd_colname", c_char_p, ResultPtr, c_int)
    proto("rgd_value", c_char_p, ResultPtr, c_int, c_int)
    proto("rgd_affected", c_longlong, ResultPtr)
    proto("rgd_token", c_char_p, ResultPtr)
    proto("rgd_token_cmp", c_int, c_char_p, c_char_p)
    proto("rgd_served_by", c_char_p, ResultPtr)
    proto("rgd_route_reason", c_char_p, ResultPtr)
    proto("rgd_free", None, ResultPtr)


# A CDLL (not a PyDLL): every call releases the GIL, so blocking calls from
# several threads wait for the daemon in parallel.
_cdll, library_path = _load()
_declare(_cdll)
lib = cast(LibRegiond, _cdll)

"""rgd_result* -> Result (or RegiondError), and the other value types."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._lib import ResultPtr, lib
from ._params import encode_text

__all__ = ["Result", "RegiondError", "HealthRow", "take_result", "health_rows", "token_cmp"]


def _text(raw: bytes | None) -> str:
    # surrogateescape: a database in another encoding never makes a read fail,
    # and the text encodes back to the same bytes as a parameter.
    return raw.decode("utf-8", "surrogateescape") if raw else ""


class RegiondError(Exception):
    """A call failed: an SQL error (sqlstate set), a timeout, no daemon, ...

    str(error) is libregiond's message, which says what to do.
    """

    def __init__(self, message: str, sqlstate: str = "", served_by: str = "", route_reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate  # the database's SQLSTATE, "" if the error is not from the database
        self.served_by = served_by  # where it failed, or ""
        self.route_reason = route_reason  # why it went there, or ""

    def __repr__(self) -> str:
        return f"RegiondError({self.message!r}, sqlstate={self.sqlstate!r}, served_by={self.served_by!r})"


@dataclass(frozen=True)
class Result:
    """A successful answer. Values are PostgreSQL's text format; None is SQL NULL."""

    rows: list[dict[str, str | None]]
    columns: tuple[str, ...]
    served_by: str  # "eu-west-1/replica", "us-east-1/primary", "cache:local", "cache:redis"
    route_reason: str  # one line for people and logs; never parse it
    token: str  # consistency token ("SYSTEMID/LSN"); "" if none
    affected: int | None  # rows changed by a write, else None
    from_cache: bool = field(default=False)  # served_by is a cache tier


@dataclass(frozen=True)
class HealthRow:
    """One endpoint as the daemon's state segment describes it (rgd_health)."""

    region: str
    endpoint: str
    role: str  # "primary" | "replica"
    healthy: bool
    lag_ms: int
    lag_bytes: int
    rtt_ms: float
    cache_healthy: bool
    replay_lsn: str  # "" while unknown


def take_result(ptr: ResultPtr) -> Result:
    """Reads a result into Python objects and frees it; raises RegiondError if it failed."""
    if not ptr:
        raise MemoryError("libregiond returned no result (out of memory)")
    try:
        served_by = _text(lib.rgd_served_by(ptr))
        route_reason = _text(lib.rgd_route_reason(ptr))
        if not lib.rgd_ok(ptr):
            raise RegiondError(
                _text(lib.rgd_error(ptr)) or "regiond call failed without a message",
                sqlstate=_text(lib.rgd_sqlstate(ptr)),
                served_by=served_by,
                route_reason=route_reason,
            )
        ncols = lib.rgd_ncols(ptr)
        columns = tuple(_text(lib.rgd_colname(ptr, c)) for c in range(ncols))
        value = lib.rgd_value
        rows: list[dict[str, str | None]] = []
        for r in range(lib.rgd_nrows(ptr)):
            row: dict[str, str | None] = {}
            for c, name in enumerate(columns):
                raw = value(ptr, r, c)
                row[name] = None if raw is None else raw.decode("utf-8", "surrogateescape")
            rows.append(row)
        affected = lib.rgd_affected(ptr)
        return Result(
            rows=rows,
            columns=columns,
            served_by=served_by,
            route_reason=route_reason,
            token=_text(lib.rgd_token(ptr)),
            affected=None if affected < 0 else affected,
            from_cache=served_by.startswith("cache:"),
        )
    finally:
        lib.rgd_free(ptr)


def _int(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0


def _float(text: str | None) -> float:
    try:
        return float(text or "0")
    except ValueError:
        return 0.0


def health_rows(result: Result) -> list[HealthRow]:
    out: list[HealthRow] = []
    for row in result.rows:
        out.append(
            HealthRow(
                region=row.get("region") or "",
                endpoint=row.get("endpoint") or "",
                role=row.get("role") or "",
                healthy=row.get("healthy") == "t",
                lag_ms=_int(row.get("lag_ms")),
                lag_bytes=_int(row.get("lag_bytes")),
                rtt_ms=_float(row.get("rtt_ms")),
                cache_healthy=row.get("cache_healthy") == "t",
                replay_lsn=row.get("replay_lsn") or "",
            )
        )
    return out


def token_cmp(a: str, b: str) -> int:
    """-1 if token a is older than b, 0 if equal, 1 if newer ("" is older than any token).

    Raises ValueError when they cannot be compared (malformed, or from
    different clusters), where the C function returns -2: a caller keeping the
    newest token must not mistake that for "older".
    """
    r = lib.rgd_token_cmp(encode_text(a, "token a"), encode_text(b, "token b"))
    if r == -2:
        raise ValueError(f"tokens {a!r} and {b!r} cannot be compared (malformed, or from different clusters)")
    return r

"""Python values -> the text-format parameters ($1..$n) libregiond sends.

The text is what PostgreSQL's input functions read, as psycopg sends simple
types: the server casts it to the parameter's type. Anything without an obvious
text form is refused rather than guessed (str() of an arbitrary object is
rarely what the column wants).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Sequence
from ctypes import c_char_p
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from ctypes import Array

    CArray = Array[c_char_p]
else:
    CArray = object


__all__ = ["Param", "to_text", "encode_text", "param_array", "text_array"]

Param = Union[
    None, bool, int, float, decimal.Decimal, str, bytes, bytearray, memoryview,
    datetime.datetime, datetime.date, datetime.time, uuid.UUID,
]


def encode_text(text: str, what: str) -> bytes:
    """UTF-8 bytes for a C string; a NUL would cut it short silently, so it is refused."""
    # surrogateescape: text decoded from the database with it goes back byte for byte.
    data = text.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL character, which PostgreSQL text cannot hold")
    return data


def to_text(value: object, what: str = "parameter") -> bytes | None:
    """The text form of one parameter; None is SQL NULL."""
    if value is None:
        return None
    # bool before int: True is an int too, and PostgreSQL's boolean reads 'true'.
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return int.__repr__(value).encode()  # not str(): an IntEnum subclass may override it
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same double;
        # PostgreSQL reads 'inf', '-inf' and 'nan' too.
        return float.__repr__(value).encode()
    if isinstance(value, decimal.Decimal):
        return str(value).encode()
    if isinstance(value, str):
        return encode_text(value, what)
    if isinstance(value, (bytes, bytearray, memoryview)):
        # bytea's hex input format.
        return b"\\x" + bytes(value).hex().encode()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat().encode()
    if isinstance(value, uuid.UUID):
        return str(value).encode()
    raise TypeError(
        f"{what}: cannot send a {type(value).__name__} to PostgreSQL; pass None, bool, int, float, "
        "Decimal, str, bytes, date, time, datetime or UUID (convert other values to str yourself)"
    )


def param_array(params: Sequence[Param]) -> tuple[int, CArray | None]:
    """(nparams, params) for a call: a ctypes array of char* (None when empty).

    The array holds references to the bytes it points into; keep it until the
    C call has returned (the library copies the request before returning).
    """
    if isinstance(params, (str, bytes, bytearray)):
        raise TypeError("params must be a sequence of values, e.g. (value,), not a single string")
    values = [to_text(v, f"parameter ${i}") for i, v in enumerate(params, start=1)]
    return _array(values)


def text_array(texts: Iterable[str], what: str) -> tuple[int, CArray | None]:
    """Like param_array for a list of non-NULL strings (cache keys)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of strings, e.g. (key,), not a single string")
    values: list[bytes | None] = []
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"{what}: expected str, got {type(t).__name__}")
        values.append(encode_text(t, what))
    return _array(values)


def _array(values: list[bytes | None]) -> tuple[int, CArray | None]:
    if not values:
        return 0, None
    # Accepted where POINTER(c_char_p) is declared; it keeps `values` alive.
    return len(values), (c_char_p * len(values))(*values)

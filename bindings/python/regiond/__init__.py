"""regiond: Python bindings of libregiond (ctypes; nothing but the standard library).

Blocking:

    import regiond
    with regiond.connect("/run/regiond/regiond.sock") as db:
        w = db.write("update users set city = $1 where id = $2", ("Lyon", 7))
        r = db.read_consistent(w.token, "select city from users where id = $1", (7,))

asyncio (libregiond's event-loop interface, one descriptor in the loop):

    import regiond.aio
    async with await regiond.aio.connect() as db:
        r = await db.read_local("select 1 as one")

The shared library is found through $REGIOND_LIB (a path), else
$REGIOND_BUILD_DIR/libclient/libregiond.so.0, else the build/ directory of the
checkout this package sits in, else the system's linker path.
"""

from __future__ import annotations

from . import aio
from ._client import Client, connect
from ._lib import RegiondLibraryError, library_path
from ._params import Param
from ._result import HealthRow, RegiondError, Result, token_cmp

__all__ = [
    "Client",
    "HealthRow",
    "Param",
    "RegiondError",
    "RegiondLibraryError",
    "Result",
    "aio",
    "connect",
    "library_path",
    "token_cmp",
]
__version__ = "0.1.0"

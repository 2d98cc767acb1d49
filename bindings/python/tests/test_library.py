"""The ctypes layer: every function of <regiond/client.h> is declared with its
exact types, and a missing library is an error that names what was tried.
These need no cluster."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import regiond
from regiond import _lib

HEADER = Path(__file__).resolve().parents[3] / "libclient" / "include" / "regiond" / "client.h"
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])

C_TYPES = {
    "void": None,
    "int": ctypes.c_int,
    "unsigned": ctypes.c_uint,
    "size_t": ctypes.c_size_t,
    "long long": ctypes.c_longlong,
    "rgd_call_id": ctypes.c_ulonglong,
    "rgd_call_id*": ctypes.POINTER(ctypes.c_ulonglong),
    "char*": ctypes.c_char_p,
    "const char*": ctypes.c_char_p,
    "const char* const*": ctypes.POINTER(ctypes.c_char_p),
    "rgd_client*": _lib.ClientPtr,
    "rgd_result*": _lib.ResultPtr,
    "const rgd_result*": _lib.ResultPtr,
}


def declarations() -> dict[str, tuple[str, list[str]]]:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    found: dict[str, tuple[str, list[str]]] = {}
    for m in re.finditer(r"RGD_API\s+([^;]*?)\b(rgd_\w+)\s*\(([^)]*)\)\s*;", text):
        ret = " ".join(m.group(1).split()).replace(" *", "*")
        params = []
        for p in m.group(3).split(","):
            p = " ".join(p.split())
            if p in ("", "void"):
                continue
            p = re.sub(r"\s*\w+$", "", p).replace(" *", "*")  # drop the parameter's name
            params.append(p)
        found[m.group(2)] = (ret, params)
    return found


def test_every_header_function_has_its_exact_prototype() -> None:
    decls = declarations()
    assert len(decls) >= 30, f"parsed only {sorted(decls)} from {HEADER}"
    for name, (ret, params) in decls.items():
        fn = getattr(_lib.lib, name)
        assert fn.restype is C_TYPES[ret], f"{name}: restype {fn.restype} for {ret}"
        assert fn.argtypes is not None, f"{name}: no argtypes"
        assert list(fn.argtypes) == [C_TYPES[p] for p in params], f"{name}: argtypes {fn.argtypes} for {params}"


def test_the_library_in_use_is_reported() -> None:
    assert Path(regiond.library_path).name.startswith("libregiond.so")


def _import_with(env_changes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REGIOND_LIB", "REGIOND_BUILD_DIR")}
    env.update(env_changes, PYTHONPATH=PACKAGE_DIR)
    return subprocess.run([sys.executable, "-c", "import regiond"], env=env, capture_output=True, text=True)


def test_an_unloadable_regiond_lib_is_an_import_error_naming_it() -> None:
    p = _import_with({"REGIOND_LIB": "/nonexistent/libregiond.so.0"})
    assert p.returncode != 0
    assert "RegiondLibraryError" in p.stderr and "/nonexistent/libregiond.so.0" in p.stderr
    assert "REGIOND_LIB" in p.stderr


def test_a_build_dir_without_the_library_is_an_error_naming_it() -> None:
    p = _import_with({"REGIOND_BUILD_DIR": "/nonexistent-build"})
    assert p.returncode != 0
    assert "/nonexistent-build/libclient/libregiond.so.0" in p.stderr


def test_regiond_error_is_an_exception_with_fields() -> None:
    e = regiond.RegiondError("boom", sqlstate="42P01", served_by="eu-west-1/replica", route_reason="why")
    assert isinstance(e, Exception)
    assert (str(e), e.sqlstate, e.served_by, e.route_reason) == ("boom", "42P01", "eu-west-1/replica", "why")


def test_result_is_frozen() -> None:
    r = regiond.Result(rows=[], columns=(), served_by="", route_reason="", token="", affected=None)
    with pytest.raises(AttributeError):
        r.token = "x"  # type: ignore[misc]

"""The cluster the tests run against: $REGIOND_CLUSTER_DIR/cluster.env, written by
scripts/cluster.sh up, and this run's own regiond daemons on it (daemons.py). A
missing cluster fails every test that needs it, with a message saying how to
start one; it is never a skip.

    REGIOND_CLUSTER_DIR=/tmp/rgd REGIOND_BUILD_DIR=$PWD/build \\
      PYTHONPATH=bindings/python /usr/bin/python3 -m pytest bindings/python/tests
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import regiond

from .daemons import Daemon
from .helpers import TABLE, wait_until

LOCAL_REGION = "eu-west-1"  # the tests' "this host": a replica region
FAR_REGION = "ap-northeast-1"
PRIMARY_REGION = "us-east-1"


def _read_cluster_env() -> dict[str, str]:
    directory = os.environ.get("REGIOND_CLUSTER_DIR") or "/tmp/regiond-cluster"
    path = Path(directory) / "cluster.env"
    if not path.is_file():
        pytest.fail(
            f"no local cluster: {path} is missing. Start one with `scripts/cluster.sh up --profile fast` "
            "(and set REGIOND_CLUSTER_DIR if it is not /tmp/regiond-cluster)",
            pytrace=False,
        )
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key] = value
    return values


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    return _read_cluster_env()


def _config(env: dict[str, str], region: str) -> str:
    key = "REGIOND_CONFIG_" + region.upper().replace("-", "_")
    if key not in env or not Path(env[key]).is_file():
        pytest.fail(f"cluster.env has no readable {key}: is the cluster from this tree's scripts/cluster.sh?",
                    pytrace=False)
    return env[key]


def _daemon(env: dict[str, str], region: str) -> Iterator[Daemon]:
    primary = env.get("PRIMARY_REGION", PRIMARY_REGION)
    daemon = Daemon(region, _config(env, region), primary)
    try:
        try:
            daemon.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        yield daemon
    finally:
        daemon.remove()


@pytest.fixture(scope="session")
def local_daemon(cluster_env: dict[str, str]) -> Iterator[Daemon]:
    yield from _daemon(cluster_env, LOCAL_REGION)


@pytest.fixture(scope="session")
def far_daemon(cluster_env: dict[str, str]) -> Iterator[Daemon]:
    yield from _daemon(cluster_env, FAR_REGION)


@pytest.fixture(scope="session")
def local_socket(local_daemon: Daemon) -> str:
    """The client socket of this test run's regiond on the eu-west-1 host."""
    return local_daemon.socket


@pytest.fixture(scope="session")
def far_socket(far_daemon: Daemon) -> str:
    """The client socket of this test run's regiond on the ap-northeast-1 host."""
    return far_daemon.socket


@pytest.fixture(scope="session")
def table(local_socket: str, far_socket: str) -> str:
    """The tests' table, created through regiond (a write) and visible on both replicas."""
    with regiond.connect(local_socket) as db:
        ddl = db.write(f"create table if not exists {TABLE} (id bigserial primary key, v text)")
        sql = "select to_regclass($1) is not null as present"
        for socket in (local_socket, far_socket):
            with regiond.connect(socket) as there:
                wait_until(lambda: there.read_local(sql, (TABLE,)).rows[0]["present"] == "t",
                           f"{TABLE} replayed on the replica behind {socket}")
        assert ddl.token
    return TABLE


@pytest.fixture
def db(local_socket: str) -> Iterator[regiond.Client]:
    with regiond.connect(local_socket) as client:
        yield client


# -- scripts/test.sh's summary ------------------------------------------------
# With $REGIOND_PYTEST_TESTLOG set, each test's outcome is also written there
# as one line of meson's testlog.json format ({"name", "result", "duration"}),
# so the suite's summary counts these tests like the C++ ones.

def pytest_sessionstart(session: pytest.Session) -> None:
    path = os.environ.get("REGIOND_PYTEST_TESTLOG")
    if path:
        Path(path).write_text("")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get("REGIOND_PYTEST_TESTLOG")
    if not path:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed) or (
        report.when == "teardown" and report.failed
    ):
        result = "OK" if report.passed else "SKIP" if report.skipped else "FAIL"
        name = "python/" + report.nodeid.split("tests/", 1)[-1] + ("" if report.when == "call" else f" ({report.when})")
        with open(path, "a") as out:
            out.write(json.dumps({"name": name, "result": result, "duration": round(report.duration, 3)}) + "\n")

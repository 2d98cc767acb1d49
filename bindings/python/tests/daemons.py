"""Runs the real regiond for the tests, one per emulated host they use.

scripts/cluster.sh starts the databases, the Redis servers and the WAN proxy,
not the daemons: each test suite owns its daemons (as the C++ integration
tests' DaemonHarness does). A daemon here runs from a copy of the cluster's
config for its region with the client socket, admin socket and state segment
moved into a fresh directory, so it never collides with another daemon. Ready
means: a client connects and rgd_health shows the primary and the region's
replica healthy (polled with a deadline). Stopped with SIGTERM (SIGKILL after a
grace period) even when a test failed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import regiond

READY_DEADLINE_S = 30.0


def regiond_binary() -> str:
    """$REGIOND_BIN, else $REGIOND_BUILD_DIR/daemon/regiond, else the checkout's build/daemon/regiond."""
    if os.environ.get("REGIOND_BIN"):
        candidates = [os.environ["REGIOND_BIN"]]
    elif os.environ.get("REGIOND_BUILD_DIR"):
        candidates = [os.path.join(os.environ["REGIOND_BUILD_DIR"], "daemon", "regiond")]
    else:
        candidates = [str(Path(__file__).resolve().parents[3] / "build" / "daemon" / "regiond")]
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    raise RuntimeError(
        f"no regiond binary at {candidates[0]}: build it (`meson compile -C build`) or set REGIOND_BIN / "
        "REGIOND_BUILD_DIR (the daemon must come from the same build as libregiond)"
    )


def rewrite_config(source: str, socket: str, admin: str, segment: str) -> str:
    """The config with [daemon]'s socket, admin_socket and state_segment replaced."""
    out, section = [], ""
    replace = {"socket": socket, "admin_socket": admin, "state_segment": segment}
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        m = re.match(r"(\w+)\s*=", stripped)
        if section == "[daemon]" and m and m.group(1) in replace:
            out.append(f'{m.group(1)} = "{replace[m.group(1)]}"')
        else:
            out.append(line)
    return "\n".join(out) + "\n"


class Daemon:
    def __init__(self, region: str, cluster_config: str, primary_region: str) -> None:
        self.region = region
        self.primary_region = primary_region
        self.dir = tempfile.mkdtemp(prefix=f"rgd-py-it-{region}.")
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "regiond.sock")
        self.admin_socket = os.path.join(self.dir, "admin.sock")
        self.log_path = os.path.join(self.dir, "regiond.log")
        self.config = os.path.join(self.dir, "regiond.toml")
        segment = f"/rgd-py-it-{os.getpid()}-{region}"
        Path(self.config).write_text(
            rewrite_config(Path(cluster_config).read_text(), self.socket, self.admin_socket, segment)
        )
        self.process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        binary = regiond_binary()
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}  # readiness: a client connects
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [binary, "--config", self.config], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log, env=env,
            )
        deadline = time.monotonic() + READY_DEADLINE_S
        last = "not started"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"regiond ({self.region}) exited during start-up; its log:\n{self.log()}")
            try:
                with regiond.connect(self.socket) as c:
                    healthy = {(h.region, h.role) for h in c.health() if h.healthy}
                if {(self.primary_region, "primary"), (self.region, "replica")} <= healthy:
                    return
                last = f"healthy endpoints so far: {sorted(healthy)}"
            except regiond.RegiondError as e:
                last = str(e)
            if time.monotonic() > deadline:
                text = self.log()
                self.stop()
                raise RuntimeError(
                    f"regiond ({self.region}) not ready within {READY_DEADLINE_S:.0f} s ({last}); its log:\n{text}"
                )
            time.sleep(0.02)  # polling interval of the readiness check (deadline above)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

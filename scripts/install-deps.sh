#!/usr/bin/env bash
# Installs, with apt-get, everything regiond's build, tests, demo and benchmarks need
# on Debian 12. Idempotent: when every package is present it only checks (~1 s).
# Also creates the `regiond` system user and group that the systemd unit and the
# generated configs (client_group = "regiond") name, and the test users of
# tests/integration/privileges: rgd-test-client (in group regiond: a client, not an
# admin) and rgd-test-admin (in group regiond-admin, and in regiond to reach the
# admin socket).
set -euo pipefail

PACKAGES=(
  # build
  build-essential g++ meson ninja-build pkg-config python3
  libpq-dev libhiredis-dev libboost-dev libsystemd-dev libtomlplusplus-dev
  catch2 libbenchmark-dev libpg-query-dev
  # servers and tools used by the local cluster, tests and benchmarks
  postgresql-15 postgresql-client-15 redis-server redis-tools pgbouncer
  iproute2 procps util-linux psmisc systemd
  # sanitizer/fuzzing toolchain
  clang libclang-rt-14-dev
  # benchmark plots
  gnuplot-nox
  # the Python bindings (bindings/python): their tests, and installing them
  # offline into a venv (pip install --no-build-isolation needs setuptools+wheel)
  python3-pytest python3-pip python3-venv python3-setuptools python3-wheel
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (apt-get and useradd need it)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The postgresql and redis packages start system-wide services on install; the
  # project runs its own instances, so keep the package's instances from starting.
  policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  trap '[[ $policy_created == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#PACKAGES[@]} packages present"
fi

# Node.js (the Node package, bindings/node, and the yardstick bench): this
# machine kind comes with Node 20 and npm (NodeSource, headers in
# /usr/include/node). Only a machine without node gets Debian's (18, with
# libnode-dev for the headers); Debian's npm would conflict with NodeSource's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-deps: no node/npm: installing Debian's nodejs, npm and libnode-dev"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm libnode-dev
fi
if [[ ! -f /usr/include/node/node_api.h ]]; then
  echo "install-deps: node is $(node --version) but /usr/include/node/node_api.h is missing:" \
       "install the Node.js headers of that version (the Node package's addon needs them)" >&2
  exit 1
fi

if ! getent group regiond >/dev/null; then
  groupadd --system regiond
fi
if ! getent passwd regiond >/dev/null; then
  useradd --system --gid regiond --home-dir /nonexistent --no-create-home \
          --shell /usr/sbin/nologin regiond
fi

# Test users: no login shell, no home, no password (nothing can log in as them);
# the integration tests switch to them with setgid/setgroups/setuid.
if ! getent group regiond-admin >/dev/null; then
  groupadd --system regiond-admin
fi
if ! getent passwd rgd-test-client >/dev/null; then
  useradd --system --gid regiond --home-dir /nonexistent --no-create-home \
          --shell /usr/sbin/nologin rgd-test-client
fi
if ! getent passwd rgd-test-admin >/dev/null; then
  useradd --system --gid regiond-admin --groups regiond --home-dir /nonexistent \
          --no-create-home --shell /usr/sbin/nologin rgd-test-admin
fi
# Users made differently by hand: the memberships the tests rely on.
if ! id -nG rgd-test-admin | tr ' ' '\n' | grep -qx regiond; then
  usermod --append --groups regiond rgd-test-admin
fi
if [[ $(id -gn rgd-test-client) != regiond ]]; then
  usermod --gid regiond rgd-test-client
fi

#!/usr/bin/env node
// `npm test`: starts a test-owned regiond for the cluster's eu-west-1 host (a
// copy of the cluster's config with its own sockets and state segment, as the
// C++ integration tests do), waits until it serves and every endpoint is
// healthy, runs `node --test test/*.test.js data-layer/test/*.test.js` against it, and stops it again,
// also when a test fails. Needs the cluster: scripts/cluster.sh up.
//
// The daemon comes from the build the addon was linked against
// (build/Release/libregiond.json), or $REGIOND_BIN.
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { loadClusterEnv } = require('./support/cluster');

const packageDir = path.resolve(__dirname, '..');
const READY_DEADLINE_MS = 60000;

function fail(message) {
  console.error(`npm test: ${message}`);
  process.exit(1);
}

function buildDir() {
  const record = path.join(packageDir, 'build', 'Release', 'libregiond.json');
  try {
    const b = JSON.parse(fs.readFileSync(record, 'utf8')).buildDir;
    if (b) return b;
  } catch { /* fall through */ }
  return process.env.REGIOND_BUILD_DIR || path.resolve(packageDir, '../../build');
}

function daemonBinary() {
  const bin = process.env.REGIOND_BIN || path.join(buildDir(), 'daemon', 'regiond');
  if (!fs.existsSync(bin)) fail(`the regiond binary ${bin} does not exist: build the repository or set REGIOND_BIN`);
  return bin;
}

// The cluster's eu-west-1 config with socket, admin socket and segment moved.
function daemonSetup(env) {
  const source = env.REGIOND_CONFIG_EU_WEST_1;
  if (!source || !fs.existsSync(source)) fail(`the cluster's eu-west-1 config (${source}) does not exist`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rgd-node-test-'));
  fs.chmodSync(dir, 0o755);
  const setup = {
    dir,
    config: path.join(dir, 'regiond.toml'),
    socket: path.join(dir, 'regiond.sock'),
    adminSocket: path.join(dir, 'admin.sock'),
    segment: `/rgd-node-test-${process.pid}`,
    log: path.join(dir, 'regiond.log'),
  };
  const text = fs.readFileSync(source, 'utf8')
    .replace(/^socket = .*$/m, `socket = "${setup.socket}"`)
    .replace(/^admin_socket = .*$/m, `admin_socket = "${setup.adminSocket}"`)
    .replace(/^state_segment = .*$/m, `state_segment = "${setup.segment}"`);
  fs.writeFileSync(setup.config, text);
  return setup;
}

// Ready = connect works and the daemon's shared state shows every endpoint
// healthy and the hot cache vouched for (as scripts/demo.sh waits).
function regionctlStatus(setup) {
  const regionctl = path.join(buildDir(), 'tools', 'regionctl', 'regionctl');
  if (!fs.existsSync(regionctl)) return null;
  try {
    return execFileSync(regionctl, ['--socket', setup.adminSocket, 'status', '--json'], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

async function waitReady(setup, daemon) {
  const { connect } = require('..');
  const deadline = Date.now() + READY_DEADLINE_MS;
  let last = 'not started';
  while (Date.now() < deadline) {
    if (daemon.exitCode !== null || daemon.signalCode !== null) {
      fail(`regiond exited (${daemon.exitCode ?? daemon.signalCode}) before serving; its log:\n` +
           fs.readFileSync(setup.log, 'utf8'));
    }
    try {
      const client = connect({ socket: setup.socket });
      try {
        const health = await client.health();
        const status = regionctlStatus(setup);
        if (health.length === 0) last = 'no endpoints in the state segment yet';
        else if (!health.every((h) => h.healthy)) last = `unhealthy: ${JSON.stringify(health)}`;
        else if (status !== null && !status.includes('"vouched":true')) last = 'hot cache not vouched for yet';
        else return;
      } finally {
        client.close();
      }
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`regiond not ready after ${READY_DEADLINE_MS / 1000} s (${last}); its log: ${setup.log}`);
}

async function main() {
  let env;
  try {
    env = loadClusterEnv();
  } catch (e) {
    fail(e.message);
  }
  const setup = daemonSetup(env);
  const logFd = fs.openSync(setup.log, 'a');
  const daemon = spawn(daemonBinary(), ['--config', setup.config], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);

  const stop = async () => {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(`/dev/shm${setup.segment}`, { force: true });
  };
  process.on('SIGINT', () => stop().then(() => process.exit(130)));
  process.on('SIGTERM', () => stop().then(() => process.exit(143)));

  let code = 1;
  try {
    await waitReady(setup, daemon);
    // `npm test -- test/verbs.test.js` runs only the files named
    const files = process.argv.length > 2
      ? process.argv.slice(2).map((f) => path.resolve(f))
      : [__dirname, path.join(__dirname, '..', 'data-layer', 'test')].flatMap((dir) =>
        fs.readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f)));
    // $REGIOND_NODE_TESTLOG: also one testlog.json line per test (scripts/test.sh's summary).
    const reporters = ['--test-reporter=spec', '--test-reporter-destination=stdout'];
    if (process.env.REGIOND_NODE_TESTLOG) {
      reporters.push(`--test-reporter=${path.join(__dirname, 'support', 'testlog-reporter.mjs')}`,
        `--test-reporter-destination=${process.env.REGIOND_NODE_TESTLOG}`);
    }
    const tests = spawn(process.execPath, ['--test', ...reporters, ...files], {
      stdio: 'inherit',
      env: { ...process.env, REGIOND_TEST_SOCKET: setup.socket },
    });
    code = await new Promise((r) => tests.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
  } finally {
    await stop();
    if (code !== 0) console.error(`npm test: the test daemon's log is kept in ${setup.log}`);
    else fs.rmSync(setup.dir, { recursive: true, force: true });
  }
  process.exit(code);
}

main().catch((e) => fail(e.stack || e.message));

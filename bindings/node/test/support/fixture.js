'use strict';
// Shared by the test files: a client on the test daemon, a table of our own
// (made through the daemon with write(), dropped at the end), and a helper
// that runs a small Node script in a child process.
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const path = require('node:path');
const regiond = require('../..');
const { testSocket } = require('./cluster');

const packageDir = path.resolve(__dirname, '..', '..');

function connectForTest(options = {}) {
  const socket = testSocket();
  try {
    return regiond.connect({ socket, ...options });
  } catch (e) {
    e.message += ' (the tests need a running regiond: `npm test` starts one for the cluster; ' +
                 'scripts/demo.sh starts the cluster\'s own)';
    throw e;
  }
}

// A table only this test process uses: (k text primary key, v text).
async function makeTable(client, prefix) {
  const table = `${prefix}_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  await client.write(`create table ${table} (k text primary key, v text not null)`);
  return table;
}

// Runs `code` with `node -e` (require('regiond') resolves to this package);
// resolves with { code, signal, stdout, stderr } when it exits, or rejects when
// it is still running after `deadlineMs` (then it is killed).
function runNode(code, { env = {}, deadlineMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], {
      cwd: packageDir,
      env: { ...process.env, REGIOND_TEST_SOCKET: testSocket(), REGIOND_PACKAGE: packageDir, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child still running after ${deadlineMs} ms (stdout: ${stdout}, stderr: ${stderr})`));
    }, deadlineMs);
    child.on('exit', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ code: exitCode, signal, stdout, stderr });
    });
  });
}

module.exports = { regiond, connectForTest, makeTable, runNode, testSocket };

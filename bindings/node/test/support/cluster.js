'use strict';
// Where the tests find regiond: the daemon test/run.js started for this run
// ($REGIOND_TEST_SOCKET), else the cluster's own eu-west-1 daemon (the one
// scripts/demo.sh starts) named in $REGIOND_CLUSTER_DIR/cluster.env. No cluster
// is a failure that says what to do, never a skip.
const fs = require('node:fs');
const path = require('node:path');

const clusterDir = process.env.REGIOND_CLUSTER_DIR || '/tmp/regiond-cluster';
const envFile = path.join(clusterDir, 'cluster.env');

function loadClusterEnv() {
  let text;
  try {
    text = fs.readFileSync(envFile, 'utf8');
  } catch (e) {
    throw new Error(`no regiond cluster: ${envFile} is missing (${e.code}). Start one with ` +
                    `\`REGIOND_CLUSTER_DIR=${clusterDir} scripts/cluster.sh up --profile fast\` from the ` +
                    'repository root, then run `npm test` in bindings/node (it starts a test daemon).');
  }
  const env = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return env;
}

function testSocket() {
  if (process.env.REGIOND_TEST_SOCKET) return process.env.REGIOND_TEST_SOCKET;
  const env = loadClusterEnv();
  if (!env.REGIOND_SOCKET_EU_WEST_1) throw new Error(`${envFile} names no REGIOND_SOCKET_EU_WEST_1`);
  return env.REGIOND_SOCKET_EU_WEST_1;
}

module.exports = { clusterDir, envFile, loadClusterEnv, testSocket };

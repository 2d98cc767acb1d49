#!/usr/bin/env node
// Builds build/Release/regiond.node with the system C++ compiler, offline:
// node-gyp would download Node's headers from the internet, but Node ships them
// (here /usr/include/node), and the addon needs nothing else but libregiond and
// node-addon-api (header-only, from the npm registry, pinned by package-lock.json).
//
// libregiond is looked for, in order:
//   1. $REGIOND_BUILD_DIR/libclient        (a meson build directory; rpath to it)
//   2. <repo>/build/libclient              (this package inside a built clone)
//   3. pkg-config regiond                  (after `meson install`)
// Run by `npm install`/`npm ci` (the "install" script) and `npm run build`.
'use strict';

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '..');
const repoDir = path.resolve(packageDir, '../..');
const outDir = path.join(packageDir, 'build', 'Release');
const sources = ['addon.cpp', 'client.cpp', 'convert.cpp'];
const jobs = 2; // the machines here have 2 cores, shared with everything else

function fail(message) {
  console.error(`regiond: build failed: ${message}`);
  process.exit(1);
}

function nodeHeaders() {
  const candidates = [
    process.env.NODE_HEADERS_DIR,
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
  if (!found) {
    fail(`Node's headers (node_api.h, uv.h) not found in ${candidates.join(', ')}; ` +
         'install them with your Node.js package or set NODE_HEADERS_DIR');
  }
  return found;
}

function resolveAddonApi() {
  try {
    return path.dirname(require.resolve('node-addon-api/package.json', { paths: [packageDir] }));
  } catch {
    return undefined;
  }
}

// `npm install <repo>/bindings/node` from another project links this folder
// and installs none of its dependencies; then fetch the pinned node-addon-api
// (package-lock.json) into this folder, from the npm registry like any install.
function addonApiHeaders() {
  let dir = resolveAddonApi();
  if (!dir) {
    console.log('regiond: node-addon-api not installed beside the package: npm ci --ignore-scripts in ' + packageDir);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    const npm = process.env.npm_execpath
      ? [process.execPath, [process.env.npm_execpath]]
      : ['npm', []];
    try {
      execFileSync(npm[0], [...npm[1], 'ci', '--ignore-scripts', '--no-audit', '--no-fund'],
                   { cwd: packageDir, env, stdio: 'inherit' });
    } catch (e) {
      fail(`could not install node-addon-api (${e.message}): run \`npm ci\` in ${packageDir}`);
    }
    dir = resolveAddonApi();
    if (!dir) fail(`node-addon-api is not installed: run \`npm ci\` in ${packageDir}`);
  }
  return dir;
}

// The source directory of a meson build directory, from meson's own record.
function mesonSourceDir(buildDir) {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(buildDir, 'meson-info', 'meson-info.json'), 'utf8'));
    return info.directories && info.directories.source;
  } catch {
    return undefined;
  }
}

function fromBuildDir(buildDir, why) {
  const libDir = path.join(buildDir, 'libclient');
  if (!fs.existsSync(path.join(libDir, 'libregiond.so'))) {
    fail(`${why}: ${libDir}/libregiond.so does not exist; build it first: meson compile -C ${buildDir}`);
  }
  const includeDirs = [mesonSourceDir(buildDir), repoDir]
    .filter(Boolean)
    .map((d) => path.join(d, 'libclient', 'include'))
    .filter((d) => fs.existsSync(path.join(d, 'regiond', 'client.h')));
  if (includeDirs.length === 0) fail(`${why}: regiond/client.h not found beside ${buildDir}`);
  return {
    buildDir,
    where: `${libDir} (${why})`,
    cflags: [`-I${includeDirs[0]}`],
    libs: [`-L${libDir}`, '-lregiond', `-Wl,-rpath,${libDir}`],
  };
}

function findLibregiond() {
  if (process.env.REGIOND_BUILD_DIR) {
    return fromBuildDir(path.resolve(process.env.REGIOND_BUILD_DIR), 'REGIOND_BUILD_DIR');
  }
  const repoBuild = path.join(repoDir, 'build');
  if (fs.existsSync(path.join(repoBuild, 'libclient', 'libregiond.so'))) {
    return fromBuildDir(repoBuild, "the repository's build directory");
  }
  try {
    const pc = (...args) => execFileSync('pkg-config', [...args, 'regiond'], { encoding: 'utf8' }).trim();
    const libDir = pc('--variable=libdir');
    return {
      where: `${libDir} (pkg-config regiond)`,
      cflags: pc('--cflags').split(/\s+/).filter(Boolean),
      libs: [...pc('--libs').split(/\s+/).filter(Boolean), `-Wl,-rpath,${libDir}`],
    };
  } catch {
    return fail('libregiond not found. Either build the repository (meson setup build && meson compile -C build, ' +
                `then this package finds ${repoBuild}/libclient), set REGIOND_BUILD_DIR to a meson build ` +
                'directory, or `meson install` it so that `pkg-config regiond` works');
  }
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message} (install g++: apt-get install g++)`)));
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}\nexited with ${signal || code}`)));
  });
}

async function main() {
  const cxx = process.env.CXX || 'c++';
  const lib = findLibregiond();
  const cflags = [
    '-std=c++20', '-O2', '-g', '-fPIC', '-fvisibility=hidden', '-pthread',
    '-Wall', '-Wextra',
    // N-API 8: napi_add_async_cleanup_hook (Node >= 14.10); the API is stable
    // across Node versions, so the addon is not tied to one Node's ABI.
    '-DNAPI_VERSION=8', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DNAPI_CPP_EXCEPTIONS',
    `-I${nodeHeaders()}`, `-I${addonApiHeaders()}`, ...lib.cflags,
  ];
  fs.mkdirSync(path.join(outDir, 'obj'), { recursive: true });
  console.log(`regiond: building the addon against libregiond in ${lib.where}`);

  const objects = sources.map((s) => path.join(outDir, 'obj', s.replace(/\.cpp$/, '.o')));
  const queue = sources.map((s, i) => [path.join(packageDir, 'src', s), objects[i]]);
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      await run(cxx, [...cflags, '-c', item[0], '-o', item[1]]);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const target = path.join(outDir, 'regiond.node');
  await run(cxx, ['-shared', '-pthread', '-o', target, ...objects, ...lib.libs]);
  // Which libregiond it was linked against: test/run.js starts the daemon of
  // the same build (client and daemon must speak the same protocol).
  fs.writeFileSync(path.join(outDir, 'libregiond.json'),
                   JSON.stringify({ where: lib.where, buildDir: lib.buildDir || null }, null, 2) + '\n');
  console.log(`regiond: built ${path.relative(process.cwd(), target) || target}`);
}

main().catch((e) => fail(e.message));

'use strict';
// Loads the compiled addon (build/Release/regiond.node, made by scripts/build.js
// at `npm install`) and gives it the RegiondError class it throws.
const path = require('node:path');
const { RegiondError } = require('./errors');

const addonPath = path.join(__dirname, '..', 'build', 'Release', 'regiond.node');

function load() {
  try {
    return require(addonPath);
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND') {
      throw new Error(`regiond: the native addon is not built (${addonPath} missing): ` +
                      `run \`npm run build\` in ${path.dirname(__dirname)} (see docs/node.md)`);
    }
    // e.g. libregiond.so.0 not found, or a libregiond without the event-loop interface
    throw new Error(`regiond: cannot load the native addon ${addonPath}: ${e.message}; ` +
                    'rebuild it against your libregiond with `npm run build` (see docs/node.md)');
  }
}

const native = load();
native.setErrorClass(RegiondError);

module.exports = native;

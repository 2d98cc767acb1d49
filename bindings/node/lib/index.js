'use strict';
// regiond for Node.js: see index.d.ts for the API and docs/node.md for the rest.
const { Client, connect, tokenCmp } = require('./client');
const { RegiondError } = require('./errors');

module.exports = { Client, connect, tokenCmp, RegiondError };

'use strict';
// CommonJS entry for Node: the wasm is compiled synchronously at require time.

// Randomness (nonceStr, paymentParams) and the APIv3 RSA come from Web Crypto. Node 18 has
// it but does not expose it as a global; make it one, only where it is missing.
if (typeof globalThis.crypto?.getRandomValues !== 'function') {
  Object.defineProperty(globalThis, 'crypto', {
    value: require('node:crypto').webcrypto,
    configurable: true,
    writable: true,
  });
}

const wasm = require('./dist/node/wxedge.js');
const { v3 } = require('./dist/node/v3.js');

// The wasm's `_v3*` functions are internal to v3.js.
const exported = {};
for (const [name, value] of Object.entries(wasm)) if (!name.startsWith('_')) exported[name] = value;

module.exports = {
  ...exported,
  ...v3(wasm),
  // Already initialised in Node; present so isomorphic code can always `await init()`.
  init: () => Promise.resolve(),
  initSync: () => undefined,
};

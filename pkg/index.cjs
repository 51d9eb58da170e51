'use strict';
// CommonJS entry for Node: the wasm is compiled synchronously at require time.

// Randomness (nonceStr, paymentParams) comes from crypto.getRandomValues. Node 18 has Web
// Crypto but does not expose it as a global; make it one, only where it is missing.
if (typeof globalThis.crypto?.getRandomValues !== 'function') {
  Object.defineProperty(globalThis, 'crypto', {
    value: require('node:crypto').webcrypto,
    configurable: true,
    writable: true,
  });
}

module.exports = {
  ...require('./dist/node/wxedge.js'),
  // Already initialised in Node; present so isomorphic code can always `await init()`.
  init: () => Promise.resolve(),
  initSync: () => undefined,
};

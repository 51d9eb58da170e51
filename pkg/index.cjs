'use strict';
// CommonJS entry for Node: the wasm is compiled synchronously at require time.
module.exports = {
  ...require('./dist/node/wxedge.js'),
  // Already initialised in Node; present so isomorphic code can always `await init()`.
  init: () => Promise.resolve(),
  initSync: () => undefined,
};

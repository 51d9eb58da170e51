'use strict';
// CommonJS entry for Node: the wasm is compiled synchronously at require time.
const wasm = require('./dist/node/wxedge.js');

module.exports = {
  sign: wasm.sign,
  verifySign: wasm.verifySign,
  toXml: wasm.toXml,
  parseXml: wasm.parseXml,
  decryptUserData: wasm.decryptUserData,
  verifyRawData: wasm.verifyRawData,
  paymentParams: wasm.paymentParams,
  verifyPaymentParams: wasm.verifyPaymentParams,
  validateUnifiedOrder: wasm.validateUnifiedOrder,
  nonceStr: wasm.nonceStr,
  explainSign: wasm.explainSign,
  parseNotify: wasm.parseNotify,
  notifyReply: wasm.notifyReply,
  errorCodes: wasm.errorCodes,
  // Already initialised in Node; present so isomorphic code can always `await init()`.
  init: () => Promise.resolve(),
  initSync: () => undefined,
};

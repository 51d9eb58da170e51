// Browser, Deno, edge runtimes and bundlers: call `await init()` once before anything else
// (it fetches wxedge_bg.wasm next to this file), or `initSync({ module })` with a compiled
// WebAssembly.Module / bytes you already have.
import init, {
  initSync,
  sign,
  verifySign,
  toXml,
  parseXml,
  decryptUserData,
  verifyRawData,
  paymentParams,
  verifyPaymentParams,
  validateUnifiedOrder,
  nonceStr,
  explainSign,
  parseNotify,
  notifyReply,
  errorCodes,
} from './dist/web/wxedge.js';

export {
  init,
  initSync,
  sign,
  verifySign,
  toXml,
  parseXml,
  decryptUserData,
  verifyRawData,
  paymentParams,
  verifyPaymentParams,
  validateUnifiedOrder,
  nonceStr,
  explainSign,
  parseNotify,
  notifyReply,
  errorCodes,
};
export default init;

// Browser, Deno, edge runtimes and bundlers: call `await init()` once before anything else
// (it fetches wxedge_bg.wasm next to the glue), or `initSync({ module })` with a compiled
// WebAssembly.Module / bytes you already have.
import * as wasm from './dist/web/wxedge.js';
import { v3 } from './v3.js';

export {
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
  explainV3,
  v3Decrypt,
  parseNotify,
  notifyReply,
  errorCodes,
  initSync,
  default,
  default as init,
} from './dist/web/wxedge.js';
// The APIv3 helpers with RSA (WebCrypto); they call the wasm only when called, after init().
export const { v3Authorization, v3Verify, v3PaymentParams } = v3(wasm);

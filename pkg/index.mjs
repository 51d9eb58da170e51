// ESM entry for Node: the same module as the CommonJS entry, so both share one instance.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wxedge = require('./index.cjs');

export const {
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
  v3Authorization,
  v3Verify,
  v3PaymentParams,
  v3Decrypt,
  parseNotify,
  notifyReply,
  errorCodes,
  init,
  initSync,
} = wxedge;
export default wxedge;

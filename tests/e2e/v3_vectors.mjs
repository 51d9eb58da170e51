// WeChat's published APIv3 test merchant key (商户API私钥, from the JSAPI调起支付签名 and
// 签名生成 pages) and its certificate serial: the package's vectors (pkg/test/vectors.mjs,
// the same key crates/core/tests/v3_vectors.rs uses). Public test material, not a secret:
// the worker signs with it in tests/e2e/v3.test.mjs so its WebCrypto signatures can be
// compared with node:crypto's, byte for byte.
import { V3 } from '../../pkg/test/vectors.mjs';

export const TEST_MERCHANT_KEY = `${V3.testKeyPkcs8}\n`;
export const TEST_MERCHANT_SERIAL = V3.serialNo;

// The APIv3 helpers that need RSA. RSA is WebCrypto's (`crypto.subtle`, RSASSA-PKCS1-v1_5
// over SHA-256): constant-time, and no RSA code in the wasm. Everything else is the core's,
// through the wasm's internal `_v3*` functions: the messages signed, the header, the key a
// serial names, the clock window, the probe, the verdict. This file only moves bytes
// between the two and keeps the imported keys.
//
// ESM as shipped for browsers and edge runtimes (web.js); scripts/lib/common.sh writes the
// CommonJS copy for Node (dist/node/v3.js), so it exports nothing but this one function.
export function v3(wasm) {
  const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  // Each PEM is imported into a CryptoKey once per isolate: the promise is cached, so
  // concurrent first calls share one import. A failed import is forgotten.
  const keys = new Map();

  function fail(code, message) {
    const e = new Error(message);
    e.code = code;
    return e;
  }

  function subtle() {
    const s = globalThis.crypto && globalThis.crypto.subtle;
    if (!s) throw fail('V3_RSA_FAILED', 'WebCrypto (crypto.subtle) is not available here: APIv3 RSA needs Node ≥ 18, a browser in a secure context, or an edge runtime');
    return s;
  }

  const isCryptoKey = (k) => typeof k === 'object' && k !== null && typeof k.type === 'string' && typeof k.algorithm === 'object';

  function importPem(pem, usage) {
    let p = keys.get(pem);
    if (!p) {
      p = (async () => {
        const [format, der] = wasm._v3KeyDer(pem);
        const want = usage === 'sign' ? 'pkcs8' : 'spki';
        if (format !== want) {
          throw fail('V3_BAD_KEY', usage === 'sign' ? 'privateKey must be the merchant API private key (BEGIN PRIVATE KEY, apiclient_key.pem), not a public key or certificate' : 'a WeChat key must be a public key (BEGIN PUBLIC KEY) or a platform certificate (BEGIN CERTIFICATE), not a private key');
        }
        try {
          return await subtle().importKey(format, der, RSA, false, [usage]);
        } catch (e) {
          throw fail('V3_BAD_KEY', `WebCrypto refused the key: ${e.message}`);
        }
      })();
      keys.set(pem, p);
      p.catch(() => keys.delete(pem));
    }
    return p;
  }

  async function keyFor(k, usage, what) {
    if (isCryptoKey(k)) return k;
    if (typeof k !== 'string') throw fail('INVALID_ARGUMENT', `${what} must be a PEM string or a CryptoKey`);
    return importPem(k, usage);
  }

  async function rsaSign(privateKey, message) {
    const key = await keyFor(privateKey, 'sign', 'privateKey');
    try {
      return new Uint8Array(await subtle().sign(RSA, key, message));
    } catch (e) {
      throw fail('V3_RSA_FAILED', `WebCrypto could not sign: ${e.message}`);
    }
  }

  const object = (o, fn) => {
    if (typeof o !== 'object' || o === null) throw fail('INVALID_ARGUMENT', `${fn} takes an options object`);
    return o;
  };
  const now = () => Math.floor(Date.now() / 1000);

  async function v3Authorization(options) {
    const o = object(options, 'v3Authorization');
    const request = {
      mchid: o.mchid,
      serialNo: o.serialNo,
      method: o.method,
      url: o.url,
      body: o.body ?? '',
      timestamp: o.timestamp ?? now(),
      nonce: o.nonce ?? wasm.nonceStr(32),
    };
    const message = wasm._v3RequestMessage(request);
    const signature = await rsaSign(o.privateKey, message);
    return {
      authorization: wasm._v3RequestHeader(request, signature),
      message: utf8.decode(message),
      timestamp: String(request.timestamp),
      nonce: request.nonce,
    };
  }

  // A header by name, case-insensitively: a fetch Headers, Node's (lowercased) headers or
  // a plain object.
  function header(headers, name) {
    if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
    if (name in headers) return headers[name];
    const lower = name.toLowerCase();
    for (const k of Object.keys(headers)) if (k.toLowerCase() === lower) return headers[k];
    return undefined;
  }

  async function v3Verify(options) {
    const o = object(options, 'v3Verify');
    if (typeof o.headers !== 'object' || o.headers === null) throw fail('INVALID_ARGUMENT', 'v3Verify needs headers (Wechatpay-Timestamp, -Nonce, -Signature, -Serial)');
    if (typeof o.body !== 'string' && !(o.body instanceof Uint8Array)) {
      throw fail('INVALID_ARGUMENT', 'body must be the raw body received, as a string or a Uint8Array (never a re-serialization: JSON.stringify of a parsed body is other bytes)');
    }
    const k = o.keys;
    if (typeof k !== 'object' || k === null) throw fail('INVALID_ARGUMENT', 'v3Verify needs keys: {publicKeyId, publicKey} and/or {platformCertificates: {serial: PEM}}');
    const certificates = k.platformCertificates ?? {};
    const check = {
      timestamp: header(o.headers, 'Wechatpay-Timestamp'),
      nonce: header(o.headers, 'Wechatpay-Nonce'),
      signature: header(o.headers, 'Wechatpay-Signature'),
      serial: header(o.headers, 'Wechatpay-Serial'),
      body: o.body,
      publicKeyId: k.publicKeyId,
      certificates: Object.keys(certificates),
      now: o.now ?? now(),
    };
    const [serial, message, signature] = wasm._v3Check(check);
    const pem = serial === k.publicKeyId ? k.publicKey : certificates[serial];
    const key = await keyFor(pem, 'verify', `the key of ${serial}`);
    let valid;
    try {
      valid = await subtle().verify(RSA, key, signature, message);
    } catch (e) {
      throw fail('V3_RSA_FAILED', `WebCrypto could not verify: ${e.message}`);
    }
    const [verifiedSerial, timestamp, nonce] = wasm._v3Conclude(check, valid);
    return { serial: verifiedSerial, timestamp, nonce, body: typeof o.body === 'string' ? o.body : utf8.decode(o.body) };
  }

  async function v3PaymentParams(options) {
    const o = object(options, 'v3PaymentParams');
    const fields = {
      appId: o.appId,
      prepayId: o.prepayId,
      timeStamp: o.timeStamp ?? now(),
      nonceStr: o.nonceStr ?? wasm.nonceStr(32),
    };
    const message = wasm._v3Payment(fields);
    return wasm._v3Payment(fields, await rsaSign(o.privateKey, message));
  }

  return { v3Authorization, v3Verify, v3PaymentParams };
}

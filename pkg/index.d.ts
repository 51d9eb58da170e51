// Types of the npm package `wxedge`. Hand-written and checked by test/types.test.mjs
// against the built package (every function present, every error code listed).

/** A WeChat parameter map. Numbers and booleans are stringified; null/undefined are left out. */
export type Params = Record<string, string | number | boolean | null | undefined>;

/** The v2 signature algorithms. */
export type SignType = 'MD5' | 'HMAC-SHA256';

/** Every `code` an error thrown by this package can carry. */
export type WxedgeErrorCode =
  | 'BAD_AMOUNT'
  | 'RANDOM_UNAVAILABLE'
  | 'SIGN_MISSING'
  | 'SIGN_TYPE_UNKNOWN'
  | 'SIGN_MISMATCH'
  | 'XML_TOO_LARGE'
  | 'XML_NOT_UTF8'
  | 'XML_DOCTYPE'
  | 'XML_ENTITY_DECLARATION'
  | 'XML_UNKNOWN_ENTITY'
  | 'XML_MISSING_ROOT'
  | 'XML_WRONG_ROOT'
  | 'XML_NESTED'
  | 'XML_DUPLICATE_KEY'
  | 'XML_ATTRIBUTES'
  | 'XML_TRAILING_CONTENT'
  | 'XML_STRAY_TEXT'
  | 'XML_UNCLOSED'
  | 'XML_INVALID_KEY'
  | 'XML_MALFORMED'
  | 'BAD_BASE64'
  | 'BAD_KEY_LENGTH'
  | 'BAD_IV_LENGTH'
  | 'BAD_CIPHERTEXT_LENGTH'
  | 'BAD_PADDING'
  | 'NOT_JSON'
  | 'MISSING_WATERMARK'
  | 'WATERMARK_MISMATCH'
  | 'RAW_DATA_SIGNATURE_MISMATCH'
  | 'BAD_JS_CODE'
  | 'WECHAT_ERROR'
  | 'WECHAT_MALFORMED_ANSWER'
  | 'INVALID_PARAMS'
  | 'WECHAT_RETURN_FAIL'
  | 'MISSING_FIELD'
  | 'FIELD_MISMATCH'
  | 'BAD_FIELD'
  | 'NOTIFY_RETURN_FAIL'
  | 'NOTIFY_MISMATCH'
  | 'V3_NOT_SIGN_ERROR'
  | 'V3_BAD_AUTHORIZATION'
  | 'V3_BAD_REQUEST'
  | 'V3_HEADER_MISSING'
  | 'V3_BAD_TIMESTAMP'
  | 'V3_TIMESTAMP_SKEW'
  | 'V3_SIGN_PROBE'
  | 'V3_UNKNOWN_SERIAL'
  | 'V3_BAD_KEY'
  | 'V3_RSA_FAILED'
  | 'V3_BAD_NONCE_LENGTH'
  | 'V3_DECRYPT_FAILED'
  | 'INVALID_ARGUMENT'
  | 'INTERNAL';

/** What every function throws: a plain `Error` with a stable `code`. */
export interface WxedgeError extends Error {
  code: WxedgeErrorCode;
}

/**
 * The v2 signature (uppercase hex) of `params` under the merchant API key.
 * `signType` defaults to `params.sign_type`, then MD5. `params.sign` is ignored.
 */
export function sign(params: Params, key: string, signType?: SignType): string;

/**
 * Whether `params.sign` is right (constant-time) under `signType`: your merchant's sign
 * type, required. `params.sign_type` never chooses the algorithm (that would let the
 * sender pick it), and WeChat may omit it even for HMAC-SHA256 merchants. Throws
 * `INVALID_ARGUMENT` without a `signType`, `SIGN_TYPE_UNKNOWN` for another one,
 * `SIGN_MISSING` without a sign.
 */
export function verifySign(params: Params, key: string, signType: SignType): boolean;

/** `<xml><k><![CDATA[v]]></k>…</xml>`, keys in byte order. Throws `XML_INVALID_KEY`. */
export function toXml(params: Params): string;

/**
 * Parses WeChat's flat XML strictly (≤ 64 KiB; no DOCTYPE, entities, nesting, duplicate
 * keys, attributes or trailing content — each its own `XML_*` code).
 */
export function parseXml(xml: string | Uint8Array): Record<string, string>;

/** The decrypted payload of `wx.getUserInfo` (or any session_key-encrypted data). */
export interface UserData {
  openId?: string;
  nickName?: string;
  gender?: number;
  language?: string;
  city?: string;
  province?: string;
  country?: string;
  avatarUrl?: string;
  unionId?: string;
  watermark: { appid: string; timestamp: number };
  [key: string]: unknown;
}

/**
 * AES-128-CBC decryption with the session_key, full PKCS#7 check, and the watermark
 * judged as the wxedge worker judges it: `appid` a string equal to `appId`, `timestamp`
 * an integer (by value, within ±(2^53 − 1)). Throws `BAD_BASE64`, `BAD_KEY_LENGTH`,
 * `BAD_IV_LENGTH`, `BAD_CIPHERTEXT_LENGTH`, `BAD_PADDING` (stale session_key), `NOT_JSON`,
 * `MISSING_WATERMARK` (no watermark, or a field missing or of the wrong kind) or
 * `WATERMARK_MISMATCH`.
 */
export function decryptUserData(
  appId: string,
  sessionKey: string,
  encryptedData: string,
  iv: string,
): UserData;

/** Whether `signature === sha1(rawData + sessionKey)` (constant-time). */
export function verifyRawData(rawData: string, sessionKey: string, signature: string): boolean;

/** The fields `wx.requestPayment` takes, plus the `appId` they were signed with. */
export interface PaymentParams {
  appId: string;
  timeStamp: string;
  nonceStr: string;
  package: string;
  signType: SignType;
  paySign: string;
}

/**
 * The second sign: `wx.requestPayment` fields for a prepay_id. `timeStamp` defaults to
 * now (Unix seconds), `nonceStr` to 32 random characters, `signType` to MD5.
 */
export function paymentParams(options: {
  appId: string;
  prepayId: string;
  key: string;
  signType?: SignType;
  timeStamp?: string | number;
  nonceStr?: string;
}): PaymentParams;

/**
 * Checks `wx.requestPayment` fields as the WeChat app does. `false` when `paySign` (or a
 * given `appId`) does not match; throws `MISSING_FIELD` / `BAD_FIELD` /
 * `SIGN_TYPE_UNKNOWN` when a field is absent or malformed.
 */
export function verifyPaymentParams(
  params: Partial<PaymentParams> & Params,
  appId: string,
  key: string,
): boolean;

export interface FieldProblem {
  field: string;
  problem: string;
}

/** Every problem of a unifiedorder parameter map at once; `[]` means valid. No key needed. */
export function validateUnifiedOrder(params: Params): FieldProblem[];

/** `len` (1–32, default 32) random characters of `[0-9A-Za-z]` from the platform CSPRNG. */
export function nonceStr(len?: number): string;

export type MistakeCode =
  | 'OTHER_ALGORITHM'
  | 'SIGN_INCLUDED'
  | 'SIGN_TYPE_LEFT_OUT'
  | 'SIGN_TYPE_ADDED'
  | 'EMPTY_VALUES_INCLUDED'
  | 'UNIFIED_ORDER_SIGN_AS_PAY_SIGN'
  | 'KEY_CASING'
  | 'WHITESPACE_IN_VALUE'
  | 'WHITESPACE_IN_KEY'
  | 'LOWERCASE_HEX'
  | 'APP_SECRET_AS_KEY'
  | 'KEY_NOT_APPENDED'
  | 'NOT_SORTED';

export interface Mistake {
  code: MistakeCode;
  /** What went wrong and what to do, in one sentence. */
  message: string;
  /** The mistake's specifics, e.g. `{code, signedAs, expected}` for KEY_CASING. */
  detail: Record<string, unknown>;
}

export interface Explanation {
  /** stringA: what WeChat signs, before `&key=`. */
  canonical: string;
  /** stringSignTemp with the key masked. */
  stringToSign: string;
  signType: SignType;
  md5: string;
  hmacSha256: string;
  /** The sign these params should carry. */
  expected: string;
  given: string;
  matches: boolean;
  /** The mistakes that, together, reproduce `given` exactly; empty if none does. */
  mistakes: Mistake[];
  hint: string;
}

/** The answer to "签名错误": why `givenSign` is not the sign of `params` under `key`. */
export function explainSign(
  params: Params,
  key: string,
  givenSign: string,
  options?: { appSecret?: string; unifiedOrderSign?: string },
): Explanation;

/** What `explainV3` can name, each only when WeChat's answer shows it. */
export type MistakeV3Code =
  | 'OTHER_REQUEST'
  | 'METHOD_MISMATCH'
  | 'FULL_URL_SIGNED'
  | 'QUERY_DROPPED'
  | 'URL_MISMATCH'
  | 'TIMESTAMP_MISMATCH'
  | 'NONCE_MISMATCH'
  | 'BODY_MISSING'
  | 'BODY_NOT_SENT'
  | 'BODY_RESERIALIZED'
  | 'BODY_DIFFERS'
  | 'FINAL_NEWLINE_MISSING'
  | 'SERIAL_MISMATCH'
  | 'SIGNATURE_MALFORMED'
  | 'KEY_OR_SIGNATURE_WRONG';

export interface MistakeV3 {
  code: MistakeV3Code;
  /** One line for a human: what differs and what to do. */
  message: string;
  /** The specifics, e.g. `signed`/`wechat` for QUERY_DROPPED, `how`/`signedLength`/`wechatLength` for BODY_RESERIALIZED. */
  [field: string]: unknown;
}

export interface ExplanationV3 {
  /** WeChat's `message`. */
  wechatMessage: string;
  /** The message we signed (null when only the Authorization header was given). */
  ours: string | null;
  oursLength: number | null;
  /** `detail.sign_information`, read; null when the answer has none. */
  wechat: {
    method: string;
    url: string;
    signMessageLength: number;
    truncatedSignMessage: string;
    /** The header's timestamp and nonce as WeChat's message shows them. */
    timestamp: string | null;
    nonce: string | null;
    /** The truncated message is the whole message. */
    complete: boolean;
  } | null;
  /** Our message is WeChat's as far as WeChat shows it; null when not compared. */
  messageMatches: boolean | null;
  mistakes: MistakeV3[];
  hint: string;
}

/**
 * The answer to an APIv3 SIGN_ERROR: compares WeChat's `sign_information` with the
 * message signed and names the difference. Give the request's parts (all four of method,
 * url, timestamp, nonceStr, plus body) or the exact `message` signed, and/or the
 * `authorization` header sent; `certificateSerial` checks its serial_no. Throws NOT_JSON,
 * V3_NOT_SIGN_ERROR, V3_BAD_AUTHORIZATION, V3_BAD_REQUEST or INVALID_ARGUMENT.
 */
export function explainV3(
  ours: {
    method?: string;
    url?: string;
    timestamp?: string | number;
    nonceStr?: string;
    body?: string | Uint8Array;
    message?: string | Uint8Array;
    authorization?: string;
    certificateSerial?: string;
  },
  answer: string | Uint8Array,
): ExplanationV3;

/** An RSA key for APIv3: a PEM string (imported into WebCrypto once, then cached) or a CryptoKey. */
export type RsaKey = string | CryptoKey;

export interface V3Authorization {
  /** The `Authorization` header's value: `WECHATPAY2-SHA256-RSA2048 mchid="…",…`. */
  authorization: string;
  /** The message signed: `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`. */
  message: string;
  timestamp: string;
  nonce: string;
}

/**
 * Signs an APIv3 request (SHA256withRSA by WebCrypto) and returns its `Authorization`
 * header. `url` is the path with its query, exactly as sent; `body` the exact bytes sent
 * (empty for GET). `privateKey`: the merchant API key, PKCS#8 PEM (`apiclient_key.pem`) or
 * a CryptoKey. `timestamp` defaults to now, `nonce` to 32 random characters. Rejects with
 * `V3_BAD_REQUEST` (method, full URL, GET with a body, a field WeChat cannot carry),
 * `V3_BAD_KEY` (not a PKCS#8 RSA private key), `V3_RSA_FAILED` or `INVALID_ARGUMENT`.
 */
export function v3Authorization(options: {
  mchid: string;
  /** The merchant API certificate's serial number. */
  serialNo: string;
  privateKey: RsaKey;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  body?: string | Uint8Array;
  timestamp?: number | string;
  nonce?: string;
}): Promise<V3Authorization>;

/** WeChat's keys, by the name `Wechatpay-Serial` gives them. */
export interface WechatKeys {
  /** The 微信支付公钥's id, `PUB_KEY_ID_…`. */
  publicKeyId?: string;
  /** The 微信支付公钥 (`BEGIN PUBLIC KEY`) or a CryptoKey. */
  publicKey?: RsaKey;
  /** Platform certificates (`BEGIN CERTIFICATE`) by serial, during or instead of the public key. */
  platformCertificates?: Record<string, RsaKey>;
}

export interface V3Verified {
  /** The `Wechatpay-Serial` whose key verified it. */
  serial: string;
  timestamp: number;
  nonce: string;
  /** The body that verified, as text: only now parse it. */
  body: string;
}

/**
 * Verifies an APIv3 answer or notify: the four `Wechatpay-*` headers (a fetch `Headers`,
 * Node's headers or a plain object) over the raw `body` received (never a
 * re-serialization). Rejects with `V3_HEADER_MISSING`, `V3_SIGN_PROBE` (WeChat's
 * signature probe: answer it 4xx), `V3_BAD_TIMESTAMP`, `V3_TIMESTAMP_SKEW` (more than
 * 300 s from `now`, default the clock), `V3_UNKNOWN_SERIAL`, `BAD_BASE64`, `SIGN_MISMATCH`,
 * `V3_BAD_KEY` or `INVALID_ARGUMENT`.
 */
export function v3Verify(options: {
  headers: Headers | Record<string, string | undefined>;
  body: string | Uint8Array;
  keys: WechatKeys;
  /** Unix seconds; defaults to now. */
  now?: number;
}): Promise<V3Verified>;

export interface V3PaymentParams {
  appId: string;
  timeStamp: string;
  nonceStr: string;
  package: string;
  signType: 'RSA';
  paySign: string;
}

/**
 * The `wx.requestPayment` fields for an APIv3 prepay_id, `paySign` by WebCrypto over
 * `appId\ntimeStamp\nnonceStr\npackage\n`. `timeStamp` defaults to now, `nonceStr` to 32
 * random characters.
 */
export function v3PaymentParams(options: {
  appId: string;
  prepayId: string;
  privateKey: RsaKey;
  timeStamp?: string | number;
  nonceStr?: string;
}): Promise<V3PaymentParams>;

/**
 * Decrypts a v3 notify's `resource` (AEAD_AES_256_GCM under the 32-byte APIv3 key) to its
 * text (JSON). Throws `BAD_KEY_LENGTH` (any key but 32 bytes, e.g. the v2 key),
 * `V3_BAD_NONCE_LENGTH`, `BAD_BASE64`, `BAD_CIPHERTEXT_LENGTH`, `V3_DECRYPT_FAILED` (the
 * tag: wrong key, nonce or associated_data, or altered), `NOT_JSON` (not UTF-8).
 */
export function v3Decrypt(options: {
  apiV3Key: string;
  nonce: string;
  associatedData?: string;
  ciphertext: string;
}): string;

export interface Notify {
  appid: string;
  mch_id: string;
  out_trade_no: string;
  transaction_id: string;
  /** Fen, an integer. */
  total_fee: number;
  openid: string;
  time_end: string;
  result_code: 'SUCCESS' | 'FAIL';
  err_code: string | null;
  err_code_des: string | null;
  /** Every field as received. */
  params: Record<string, string>;
}

/**
 * Parses and verifies a payment notify with the merchant key and configured sign type
 * (required: the notify's own `sign_type` never picks the algorithm; without one,
 * `INVALID_ARGUMENT`).
 * Throws on anything not to be trusted (`SIGN_MISMATCH`, `XML_*`, `MISSING_FIELD`, …).
 * Check `out_trade_no`, `total_fee`, `appid`, `mch_id` against your order before crediting.
 */
export function parseNotify(xml: string | Uint8Array, key: string, signType: SignType): Notify;

/** The XML answer to a notify: `SUCCESS`/`OK`, or `FAIL` with `reason`. */
export function notifyReply(ok: boolean, reason?: string): string;

/** Every error code this package can throw. */
export function errorCodes(): WxedgeErrorCode[];

/**
 * Loads the wasm. Required once in browsers and edge runtimes (`wxedge/web`); a resolved
 * no-op in Node, where loading is synchronous.
 */
export function init(
  input?: { module_or_path: RequestInfo | URL | Response | BufferSource | WebAssembly.Module } | RequestInfo | URL | Response | BufferSource | WebAssembly.Module,
): Promise<unknown>;
export function initSync(module?: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): unknown;
export default init;

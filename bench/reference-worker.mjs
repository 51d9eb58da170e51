// The reference for `scripts/bench worker`: a plain JS Worker that makes, per route, the
// same storage and network calls as wxedge's worker (the same KV reads and writes, D1
// statements, rate-limiter calls, subrequests to wxsim with a deadline, one JSON log line)
// and nothing else: no validation, no signing, no XML, no decryption. Served by the same
// `wrangler dev` with the same bindings, it costs what the runtime and the local KV/D1
// emulation cost; wxedge's worker minus this is the worker's own CPU (its wasm and the JS
// glue around it). A benchmark fixture, never deployed: it checks nothing.
//
// Under PAY_API=v3 it makes the v3 calls instead: /pay/ POSTs a JSON prepay body with an
// Authorization header of the right shape (not signed: wxsim refuses it, an answer of the
// same size class) and answers the five fields without a paySign; /notify/ takes the order
// from the bench's `x-bench-out-trade-no` / `x-bench-transaction-id` headers and answers
// 204. It neither signs, verifies, decrypts nor parses JSON: SHA256withRSA (WebCrypto),
// AES-256-GCM and the envelope's reading are the worker's own CPU, so they stay out of the
// reference.

const json = (status, code, data) =>
  new Response(JSON.stringify({ code, msg: code ? 'error' : 'ok', data }), {
    status,
    headers: { 'content-type': 'application/json' },
  });

/** fetch with a deadline, as the worker's wechat::send does (AbortController + timer). */
async function upstream(url, init, ms) {
  const ctl = new AbortController();
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    const res = await Promise.race([fetch(url, { ...init, signal: ctl.signal }), deadline]);
    return new Uint8Array(await res.arrayBuffer());
  } finally {
    clearTimeout(timer);
  }
}

/** A KV key of the worker's shape (`session:` + 64 hex characters), without hashing: the
 * SHA-256 is the worker's own work, not a storage call. */
const sessionKey = (t) => `session:${(t + t).replace(/[^0-9a-f]/gi, '0').slice(0, 64)}`;

// The order row as wxedge reads it (wxedge_core::store::ORDER_JSON): one JSON string.
const ORDER_JSON = `json_object('out_trade_no', out_trade_no, 'openid', openid, 'merchant_id', merchant_id,
  'total_fee', total_fee, 'body', body, 'spbill_create_ip', spbill_create_ip, 'status', status, 'version', version,
  'prepay_id', prepay_id, 'prepay_ms', prepay_ms, 'transaction_id', transaction_id, 'paid_ms', paid_ms,
  'paid_via', paid_via, 'failure', failure, 'withdrawal_id', withdrawal_id, 'created_ms', created_ms,
  'updated_ms', updated_ms, 'next_check_ms', next_check_ms, 'checks', checks, 'attention', attention,
  'attention_note', attention_note, 'reconcile_note', reconcile_note)`;

const token = () => {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};

const routes = {
  // jscode2session, the per-IP and per-openid limiters, the user upsert, the session put.
  async '/login'(req, env) {
    const { code } = await req.json();
    await env.LOGIN_IP_LIMITER.limit({ key: 'LOGIN_IP_LIMITER:127.0.0.1' });
    const url = `${env.WECHAT_API_BASE}/sns/jscode2session?appid=${env.WECHAT_APPID}&secret=${env.WECHAT_APP_SECRET}&js_code=${code}&grant_type=authorization_code`;
    const answer = JSON.parse(new TextDecoder().decode(await upstream(url, {}, 5000)));
    await env.LOGIN_OPENID_LIMITER.limit({ key: `LOGIN_OPENID_LIMITER:${answer.openid}` });
    const now = Date.now();
    await env.DB.prepare(
      `INSERT INTO users (openid, unionid, created_ms, login_ms, updated_ms) VALUES (?1, ?2, ?3, ?3, ?3)
       ON CONFLICT (openid) DO UPDATE SET unionid = COALESCE(excluded.unionid, users.unionid),
         login_ms = excluded.login_ms, updated_ms = excluded.updated_ms`,
    ).bind(answer.openid, null, now).run();
    const t = token();
    const session = { openid: answer.openid, session_key: answer.session_key, login_ms: now, expires_ms: now + 7200e3 };
    await env.SESSIONS.put(sessionKey(t), JSON.stringify(session), { expirationTtl: 7200 });
    return json(200, 0, { token: t, expires_in: 7200, ttl_mode: 'fixed' });
  },

  // The session get, both limiters, the order insert (merchant checked in it), unifiedorder
  // (a fixed body: wxsim refuses its sign, an answer of the same size class), the update.
  async '/pay'(req, env) {
    const body = await req.json();
    const t = (req.headers.get('authorization') ?? '').replace(/^Bearer /, '');
    const session = JSON.parse(await env.SESSIONS.get(sessionKey(t), 'text'));
    await env.PAY_IP_LIMITER.limit({ key: 'PAY_IP_LIMITER:127.0.0.1' });
    await env.PAY_OPENID_LIMITER.limit({ key: `PAY_OPENID_LIMITER:${session.openid}` });
    const no = token().replace(/[-_]/g, '0').slice(0, 32);
    const now = Date.now();
    await env.DB.prepare(
      `INSERT INTO orders (out_trade_no, openid, merchant_id, total_fee, body, spbill_create_ip, status,
         version, created_ms, updated_ms, next_check_ms)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8, ?9
       WHERE EXISTS (SELECT 1 FROM merchants WHERE merchant_id = ?3)`,
    ).bind(no, session.openid, 'default', body.money, 'wxedge order', '127.0.0.1', 'CREATED', now, now + 600000).run();
    if (env.PAY_API === 'v3') return payV3(env, session, no, body.money, now);
    const xml = `<xml><appid><![CDATA[${env.WECHAT_APPID}]]></appid><body><![CDATA[wxedge order]]></body><mch_id><![CDATA[${env.WECHAT_MCH_ID}]]></mch_id><nonce_str><![CDATA[${token().slice(0, 32)}]]></nonce_str><notify_url><![CDATA[${env.PUBLIC_BASE_URL}/notify/]]></notify_url><openid><![CDATA[${session.openid}]]></openid><out_trade_no><![CDATA[${no}]]></out_trade_no><spbill_create_ip><![CDATA[127.0.0.1]]></spbill_create_ip><total_fee><![CDATA[${body.money}]]></total_fee><trade_type><![CDATA[JSAPI]]></trade_type><sign><![CDATA[00000000000000000000000000000000]]></sign></xml>`;
    await upstream(`${env.WECHAT_PAY_BASE}/pay/unifiedorder`, { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body: xml }, 5000);
    await env.DB.prepare(
      `UPDATE orders SET status = ?5, prepay_id = ?6, prepay_ms = ?4, next_check_ms = ?7, checks = 0, updated_ms = ?4,
         version = version + 1 WHERE out_trade_no = ?1 AND status = ?2 AND version = ?3`,
    ).bind(no, 'CREATED', 0, now, 'PREPAID', 'wx000000000000000000000000000000', now + 600000).run();
    return json(200, 0, { timeStamp: String(Math.floor(now / 1000)), nonceStr: 'x', package: 'prepay_id=wx0', signType: 'MD5', paySign: 'X', out_trade_no: no });
  },

  // Read the order, then the credit batch (the guarded UPDATE and the notification kept
  // only if it changed the row): what a verified notify for a new order does.
  async '/notify'(req, env) {
    const text = await req.text();
    const v3 = text.startsWith('{');
    const field = v3
      ? (name) => req.headers.get(`x-bench-${name.replace(/_/g, '-')}`) ?? ''
      : (name) => new RegExp(`<${name}><!\\[CDATA\\[([^\\]]*)\\]\\]>`).exec(text)?.[1] ?? '';
    const no = field('out_trade_no');
    const now = Date.now();
    const row = JSON.parse(await env.DB.prepare(`SELECT ${ORDER_JSON} AS j FROM orders WHERE out_trade_no = ?1`).bind(no).first('j'));
    await env.DB.batch([
      env.DB.prepare(
        `UPDATE orders SET status = ?5, transaction_id = ?6, paid_ms = ?4, paid_via = ?7, next_check_ms = NULL,
           attention = COALESCE(?8, attention), attention_note = COALESCE(?9, attention_note), updated_ms = ?4,
           version = version + 1 WHERE out_trade_no = ?1 AND status = ?2 AND version = ?3`,
      ).bind(no, row.status, row.version, now, 'PAID', field('transaction_id'), 'notify', null, null),
      env.DB.prepare(
        `INSERT INTO notifications (received_ms, body, body_sha256, body_bytes, verified, remote_ip, out_trade_no, verdict, reason)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE changes() = 1`,
      ).bind(now, text, '0'.repeat(64), text.length, 1, null, no, 'CREDITED', 'verified; order is now PAID'),
    ]);
    if (v3) return new Response(null, { status: 204 });
    return new Response('<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>', {
      headers: { 'content-type': 'text/xml; charset=utf-8' },
    });
  },

  // One KV read and one D1 query, as /healthz does.
  async '/healthz'(req, env) {
    await env.SESSIONS.get('healthz');
    await env.DB.prepare('SELECT 1 AS one').first('one');
    return json(200, 0, { kv: true, d1: true });
  },
};

/** The APIv3 half of /pay/: JSAPI prepay (a JSON body, an Authorization header of the
 * documented shape, unsigned), then the same UPDATE as v2. */
async function payV3(env, session, no, money, now) {
  const body = JSON.stringify({
    appid: env.WECHAT_APPID, mchid: env.WECHAT_MCH_ID, description: 'wxedge order', out_trade_no: no,
    notify_url: `${env.PUBLIC_BASE_URL}/notify/`, amount: { total: money, currency: 'CNY' }, payer: { openid: session.openid },
  });
  const ts = Math.floor(now / 1000);
  const authorization = `WECHATPAY2-SHA256-RSA2048 mchid="${env.WECHAT_MCH_ID}",nonce_str="${token().slice(0, 32)}",signature="${'A'.repeat(342)}==",timestamp="${ts}",serial_no="${env.WECHAT_PAY_V3_SERIAL}"`;
  await upstream(`${env.WECHAT_PAY_BASE}/v3/pay/transactions/jsapi`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'wxedge/0.1.0' },
    body,
  }, 5000);
  await env.DB.prepare(
    `UPDATE orders SET status = ?5, prepay_id = ?6, prepay_ms = ?4, next_check_ms = ?7, checks = 0, updated_ms = ?4,
       version = version + 1 WHERE out_trade_no = ?1 AND status = ?2 AND version = ?3`,
  ).bind(no, 'CREATED', 0, now, 'PREPAID', 'wx000000000000000000000000000000', now + 600000).run();
  return json(200, 0, { timeStamp: String(ts), nonceStr: 'x', package: 'prepay_id=wx0', signType: 'RSA', paySign: 'X', out_trade_no: no });
}

export default {
  async fetch(req, env) {
    const start = Date.now();
    const route = new URL(req.url).pathname.replace(/\/+$/, '');
    const handler = routes[route];
    const res = handler ? await handler(req, env) : json(404, 5, null);
    console.log(JSON.stringify({ method: req.method, route, status: res.status, code: res.status === 200 ? 0 : 5, ms: Date.now() - start }));
    return res;
  },
};

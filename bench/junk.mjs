// D1 growth under junk notifies: BENCH_JUNK (default 10 000) bodies of 64 KiB that do not
// verify, posted to /notify/ at BENCH_CONCURRENCY (default 8), against wxsim + the worker
// under `wrangler dev`: once with the per-IP limit for rejected notifies out of reach
// (junk from many addresses), once with wrangler.toml's limit (60 a minute from one
// address). The logical size of the local D1 (page_count × page_size) before and after.
// Prints one JSON object (scripts/bench junk).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, ROOT } from '../tests/e2e/harness.mjs';

const N = Number(process.env.BENCH_JUNK ?? 10000);
const C = Number(process.env.BENCH_CONCURRENCY ?? 8);
const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
const LIMIT = Number(/name = "NOTIFY_REJECT_IP_LIMITER"\nnamespace_id = "\d+"\nsimple = \{ limit = (\d+)/.exec(toml)[1]);

const dbBytes = (stack) => {
  const [{ page_count: pages }] = stack.sql('PRAGMA page_count');
  const [{ page_size: size }] = stack.sql('PRAGMA page_size');
  return pages * size;
};

async function run(limit) {
  const stack = await new Stack(limit ? { limits: { NOTIFY_REJECT_IP_LIMITER: limit } } : {}).start();
  try {
    const before = dbBytes(stack);
    const statuses = {};
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: C }, async () => {
      while (next < N) {
        const i = next++;
        // Junk that looks like a notify at first, different every time.
        const head = `<xml><return_code>SUCCESS</return_code><out_trade_no>J${i}</out_trade_no><x>`;
        const body = Buffer.alloc(64 * 1024, 'x');
        body.write(head);
        const r = await fetch(`${stack.api}/notify/`, { method: 'POST', body, headers: { 'content-type': 'text/xml' } });
        await r.arrayBuffer();
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    const after = dbBytes(stack);
    const [{ n, bytes }] = stack.sql('SELECT COUNT(*) AS n, COALESCE(SUM(length(body)), 0) AS bytes FROM notifications WHERE verified = 0');
    return { limit: limit ?? null, posted: N, statuses, stored: n, stored_body_bytes: bytes, before, after, growth: after - before, secs };
  } finally {
    await stack.stop();
  }
}

const unlimited = await run(null);
const limited = await run(LIMIT);
console.log(JSON.stringify({ n: N, c: C, runs: [unlimited, limited] }));

// The package in real headless Chromium (Debian's, driven by playwright-core): a page loads
// the web entry, runs init(), decrypts the official vector and signs the doc example.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { DOC } from '../vectors.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

function serve() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (path.includes('..')) return res.writeHead(400).end();
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('wxedge works in headless Chromium', async () => {
  const server = await serve();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/test/browser/index.html`);
    await page.waitForFunction(() => window.__results !== undefined, null, { timeout: 20000 });
    const r = await page.evaluate(() => window.__results);
    assert.equal(r.failure, undefined, r.failure);
    assert.deepEqual(errors, []);
    assert.match(r.userAgent, /Chrome/);
    assert.equal(r.openId, 'oGZUI0egBJY1zhBYw2KhdUfwVJJE');
    assert.equal(r.nickName, 'Band');
    assert.deepEqual(r.watermark, { appid: 'wx4f4bc4dec97d474b', timestamp: 1477314187 });
    assert.equal(r.md5, DOC.md5);
    assert.equal(r.hmac, DOC.hmac);
    assert.equal(r.roundTrip, '学费 😀 ]]>');
    assert.match(r.nonce, /^[0-9A-Za-z]{32}$/);
    assert.equal(r.errorCode, 'XML_DOCTYPE');
  } finally {
    await browser.close();
    server.close();
  }
});

// The package in real headless Chromium (Debian's, driven by playwright-core): a page loads
// it (as a plain ES module, and bundled by esbuild), runs init(), decrypts the official
// vector, signs the doc example, and runs the APIv3 cases (v3_cases.mjs) on its WebCrypto.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { build } from 'esbuild';
import { DOC } from '../vectors.mjs';
import { cases } from '../v3_cases.mjs';

const pkg = fileURLToPath(new URL('../..', import.meta.url));
const here = fileURLToPath(new URL('.', import.meta.url));
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

function serve(root) {
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

async function resultsOf(root, path) {
  const server = await serve(root);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}${path}`);
    await page.waitForFunction(() => window.__results !== undefined, null, { timeout: 20000 });
    const r = await page.evaluate(() => window.__results);
    assert.deepEqual(errors, []);
    return r;
  } finally {
    await browser.close();
    server.close();
  }
}

function check(r) {
  assert.equal(r.failure, undefined, r.failure);
  assert.match(r.userAgent, /Chrome/);
  assert.equal(r.openId, 'oGZUI0egBJY1zhBYw2KhdUfwVJJE');
  assert.equal(r.nickName, 'Band');
  assert.deepEqual(r.watermark, { appid: 'wx4f4bc4dec97d474b', timestamp: 1477314187 });
  assert.equal(r.md5, DOC.md5);
  assert.equal(r.hmac, DOC.hmac);
  assert.equal(r.roundTrip, '学费 😀 ]]>');
  assert.match(r.nonce, /^[0-9A-Za-z]{32}$/);
  assert.equal(r.errorCode, 'XML_DOCTYPE');
  assert.deepEqual(r.v3.failures, []);
  assert.equal(r.v3.passed, cases.length);
}

test('wxedge works in headless Chromium as a plain ES module', async () => {
  check(await resultsOf(pkg, '/test/browser/index.html'));
});

test('wxedge works in headless Chromium bundled by esbuild (the "browser" export)', async () => {
  const out = await mkdtemp(join(tmpdir(), 'wxedge-bundle-'));
  try {
    await build({
      entryPoints: [join(here, 'bundle-entry.js')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outfile: join(out, 'app.js'),
      logLevel: 'error',
    });
    // esbuild leaves `new URL('wxedge_bg.wasm', import.meta.url)` alone: the wasm ships
    // next to the bundle, as a bundler user deploys it.
    await copyFile(join(pkg, 'dist/web/wxedge_bg.wasm'), join(out, 'wxedge_bg.wasm'));
    await copyFile(join(here, 'bundle.html'), join(out, 'index.html'));
    const bundle = await readFile(join(out, 'app.js'), 'utf8');
    assert.ok(!bundle.includes('require('), 'the browser build, not the Node one');
    check(await resultsOf(out, '/index.html'));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

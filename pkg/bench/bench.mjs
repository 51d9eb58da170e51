// The npm package against Node's native crypto and crypto-js, on the four operations a
// backend does per payment: sign MD5, sign HMAC-SHA256, notify parse+verify, decrypt.
// Prints a markdown table (ns/op, lower is better) and the ratios; run by scripts/bench.
import { createHash, createHmac, createDecipheriv, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import * as wx from '../index.mjs';
import { DEMO, DOC } from '../test/vectors.mjs';

const require = createRequire(import.meta.url);
const CryptoJS = require('crypto-js');

// A realistic unifiedorder-sized map.
const params = {
  appid: 'wxd930ea5d5a258f4f', mch_id: '10000100', nonce_str: 'ibuaiVcKdpRxkhJA5K8264ILTKCH16CQ', body: '老男孩学费',
  out_trade_no: '20261125120000abcdefghij012345', total_fee: '100', spbill_create_ip: '203.0.113.7',
  notify_url: 'https://pay.example.com/notify/', trade_type: 'JSAPI', openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', sign_type: 'MD5',
};
const key = DOC.key;

function canonical(p) {
  return Object.keys(p).filter((k) => p[k] !== '' && p[k] != null && k !== 'sign').sort().map((k) => `${k}=${p[k]}`).join('&') + `&key=${key}`;
}

// A signed notify, as WeChat sends it.
const notifyFields = {
  return_code: 'SUCCESS', result_code: 'SUCCESS', appid: 'wxd930ea5d5a258f4f', mch_id: '10000100', nonce_str: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
  openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', is_subscribe: 'N', trade_type: 'JSAPI', bank_type: 'OTHERS', fee_type: 'CNY', total_fee: '100',
  cash_fee: '100', transaction_id: '4200000000202611250000000001', out_trade_no: '20261125120000abcdefghij012345', time_end: '20261125120000',
};
const notifyXml = wx.toXml({ ...notifyFields, sign: wx.sign(notifyFields, key, 'MD5') });

// The XML parse every JS tutorial uses: a regex over the flat map.
function regexXml(xml) {
  const out = {};
  for (const m of xml.matchAll(/<(\w+)>(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))<\/\1>/g)) if (m[1] !== 'xml') out[m[1]] = m[2] ?? m[3];
  return out;
}

const ops = {
  'sign MD5': {
    wxedge: () => wx.sign(params, key, 'MD5'),
    native: () => createHash('md5').update(canonical(params)).digest('hex').toUpperCase(),
    cryptojs: () => CryptoJS.MD5(canonical(params)).toString().toUpperCase(),
  },
  'sign HMAC-SHA256': {
    wxedge: () => wx.sign(params, key, 'HMAC-SHA256'),
    native: () => createHmac('sha256', key).update(canonical(params)).digest('hex').toUpperCase(),
    cryptojs: () => CryptoJS.HmacSHA256(canonical(params), key).toString().toUpperCase(),
  },
  'notify parse+verify': {
    wxedge: () => wx.parseNotify(notifyXml, key, 'MD5'),
    native: () => {
      const p = regexXml(notifyXml);
      const s = Buffer.from(createHash('md5').update(canonical(p)).digest('hex').toUpperCase());
      if (!timingSafeEqual(s, Buffer.from(p.sign))) throw new Error('bad sign');
      return p;
    },
    cryptojs: () => {
      const p = regexXml(notifyXml);
      if (CryptoJS.MD5(canonical(p)).toString().toUpperCase() !== p.sign) throw new Error('bad sign');
      return p;
    },
  },
  'decrypt (official vector)': {
    wxedge: () => wx.decryptUserData(DEMO.appId, DEMO.sessionKey, DEMO.encryptedData, DEMO.iv),
    native: () => {
      const d = createDecipheriv('aes-128-cbc', Buffer.from(DEMO.sessionKey, 'base64'), Buffer.from(DEMO.iv, 'base64'));
      const out = JSON.parse(Buffer.concat([d.update(Buffer.from(DEMO.encryptedData, 'base64')), d.final()]).toString('utf8'));
      if (out.watermark.appid !== DEMO.appId) throw new Error('watermark');
      return out;
    },
    cryptojs: () => {
      const plain = CryptoJS.AES.decrypt(DEMO.encryptedData, CryptoJS.enc.Base64.parse(DEMO.sessionKey), {
        iv: CryptoJS.enc.Base64.parse(DEMO.iv), mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7,
      });
      const out = JSON.parse(plain.toString(CryptoJS.enc.Utf8));
      if (out.watermark.appid !== DEMO.appId) throw new Error('watermark');
      return out;
    },
  },
};

// Same answers first: a benchmark of wrong code proves nothing.
for (const [name, impls] of Object.entries(ops)) {
  const results = Object.values(impls).map((f) => JSON.stringify(f()));
  if (name.startsWith('sign') && new Set(results).size !== 1) throw new Error(`${name}: implementations disagree: ${results}`);
}

// Rounds are interleaved across the implementations of one operation, and each keeps its
// fastest round: on a shared machine slow spells come and go, and interleaving gives every
// implementation the same chance of a quiet round.
function timeAll(impls) {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
  const roundNs = BigInt(Math.round((Number(process.env.BENCH_MS ?? 1500) * 1e6) / rounds));
  const best = {};
  for (const [k, fn] of Object.entries(impls)) {
    for (let i = 0; i < 2000; i++) fn(); // warm up the JIT
    best[k] = Infinity;
  }
  for (let round = 0; round < rounds; round++) {
    for (const [k, fn] of Object.entries(impls)) {
      let n = 0;
      const start = process.hrtime.bigint();
      let now = start;
      while (now - start < roundNs) {
        for (let i = 0; i < 100; i++) fn();
        n += 100;
        now = process.hrtime.bigint();
      }
      best[k] = Math.min(best[k], Number(now - start) / n);
    }
  }
  return best;
}

const rows = [];
for (const [name, impls] of Object.entries(ops)) rows.push({ name, ...timeAll(impls) });

const wasm = readFileSync(new URL('../dist/web/wxedge_bg.wasm', import.meta.url));
const size = { raw: statSync(new URL('../dist/web/wxedge_bg.wasm', import.meta.url)).size, gz: gzipSync(wasm, { level: 9 }).length };

const fmt = (x) => x.toFixed(0);
const lines = [
  `Node ${process.version}; fastest of ${process.env.BENCH_ROUNDS ?? 15} interleaved rounds, ns per operation (lower is better).`,
  '',
  '| operation | wxedge (wasm) | node:crypto | crypto-js | speed-up vs crypto-js | vs node:crypto |',
  '|---|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.wxedge)} | ${fmt(r.native)} | ${fmt(r.cryptojs)} | ${(r.cryptojs / r.wxedge).toFixed(1)}× | ${(r.native / r.wxedge).toFixed(2)}× |`),
  '',
  `wasm (web build): ${(size.raw / 1024).toFixed(1)} KiB raw, ${(size.gz / 1024).toFixed(1)} KiB gzipped (-9).`,
  '',
  'Budget: v2 sign ≥ 1.0× node:crypto (MD5 and HMAC-SHA256); notify parse+verify ≥ 0.8× node:crypto; ≥ 5× crypto-js on sign and decrypt; wasm ≤ 110 KB gzipped.',
  ...rows.filter((r) => r.name.startsWith('sign')).map((r) => `- ${r.name}: ${(r.native / r.wxedge).toFixed(2)}× node:crypto → ${r.native / r.wxedge >= 1.0 ? 'within budget' : 'OVER BUDGET'}`),
  ...rows.filter((r) => r.name.startsWith('notify')).map((r) => `- ${r.name}: ${(r.native / r.wxedge).toFixed(2)}× node:crypto → ${r.native / r.wxedge >= 0.8 ? 'within budget' : 'OVER BUDGET'}`),
  ...rows.filter((r) => !r.name.startsWith('notify')).map((r) => `- ${r.name}: ${(r.cryptojs / r.wxedge).toFixed(1)}× crypto-js → ${r.cryptojs / r.wxedge >= 5 ? 'within budget' : 'OVER BUDGET'}`),
  `- wasm gzipped: ${(size.gz / 1000).toFixed(1)} KB → ${size.gz <= 110_000 ? 'within budget' : 'OVER BUDGET'}`,
];
console.log(lines.join('\n'));

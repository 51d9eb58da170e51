#!/usr/bin/env node
// wxedge — the command line for people debugging "签名错误" and WeChat payloads by hand.
// Every operation is the package's own function; this file only reads input and prints.
import { readFileSync } from 'node:fs';
import { sign, verifySign, explainSign, explainV3, decryptUserData, parseXml, toXml } from '../index.mjs';

const USAGE = `wxedge — WeChat Pay v2 & mini-program helper

usage:
  wxedge sign     [--sign-type MD5|HMAC-SHA256] [--output xml] [INPUT]
                                                            print the string signed and the sign;
                                                            --output xml: the signed XML body, to POST
  wxedge verify   --sign-type MD5|HMAC-SHA256 [INPUT]       check INPUT's own "sign" under YOUR merchant's
                                                            sign type (never INPUT's sign_type); explain a mismatch
  wxedge explain  --sign SIGN [--app-secret S] [--unified-order-sign S] [INPUT]
                                                            name the mistake that gives SIGN
  wxedge explain-v3 --method M --url PATH --timestamp T --nonce N [--body B | --body-file F]
                  [--authorization HEADER] [--serial CERT_SERIAL] [ANSWER]
                                                            APIv3 SIGN_ERROR: compare WeChat's answer
                                                            (ANSWER: its JSON body, with sign_information)
                                                            with the request you signed; name the difference
  wxedge decrypt  --appid A --session-key K --iv IV [ENCRYPTED_DATA]
  wxedge xml2json [INPUT]
  wxedge json2xml [INPUT]

For explain-v3, --url is the path and query you signed, --body the exact body you sent
(--body-file reads it byte for byte), --serial your merchant API certificate's serial;
no key is needed: nothing is signed.

INPUT is JSON ({"appid": "...", ...}) or WeChat XML (<xml>...</xml>), given as an argument,
or read from stdin when absent or "-". The API key comes from --key or $WXEDGE_KEY
(prefer the variable: it stays out of your shell history). Nothing is sent anywhere.

exit status: 0 ok, 1 mismatch or invalid input, 2 usage error`;

function fail(message, status = 2) {
  process.stderr.write(`wxedge: ${message}\n`);
  process.exit(status);
}

function parseArgs(argv) {
  const flags = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') flags.help = true;
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < argv.length) flags[a.slice(2)] = argv[++i];
      else fail(`${a} needs a value`);
    } else rest.push(a);
  }
  return { flags, rest };
}

function readInput(arg) {
  const text = arg === undefined || arg === '-' ? readFileSync(0, 'utf8') : arg;
  return text.trim();
}

function readParams(arg) {
  const text = readInput(arg);
  if (text.startsWith('<')) return parseXml(text);
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (e) {
    fail(`input is neither WeChat XML nor a JSON object (${e.message})`, 1);
  }
}

function key(flags) {
  const k = flags.key ?? process.env.WXEDGE_KEY;
  if (!k) fail('the API key is missing: pass --key or set WXEDGE_KEY');
  return k;
}

function printExplanation(e) {
  const out = process.stdout;
  out.write(`string signed (stringA):\n  ${e.canonical}\n`);
  out.write(`with the key:\n  ${e.stringToSign}\n`);
  out.write(`MD5:         ${e.md5}\nHMAC-SHA256: ${e.hmacSha256}\n`);
  out.write(`expected (${e.signType}): ${e.expected}\ngiven:                ${e.given}\n`);
  if (e.matches) {
    out.write('OK: the sign matches\n');
    return;
  }
  if (e.mistakes.length) {
    out.write('MISMATCH, explained by:\n');
    for (const m of e.mistakes) out.write(`  - [${m.code}] ${m.message}\n`);
  } else out.write('MISMATCH\n');
  out.write(`hint: ${e.hint}\n`);
}

function printExplanationV3(e) {
  const out = process.stdout;
  out.write(`WeChat says: ${e.wechatMessage}\n`);
  if (e.ours !== null) out.write(`message you signed (${e.oursLength} bytes):\n  ${JSON.stringify(e.ours)}\n`);
  if (e.wechat) {
    const shown = e.wechat.complete ? 'all of it' : `its first ${e.wechat.truncatedSignMessage.length} characters`;
    out.write(`message WeChat verified (${e.wechat.signMessageLength} bytes; ${shown}):\n  ${JSON.stringify(e.wechat.truncatedSignMessage)}\n`);
  }
  if (e.messageMatches === true) out.write('the messages agree as far as WeChat shows its own\n');
  if (e.mistakes.length) {
    out.write('MISMATCH, explained by:\n');
    for (const m of e.mistakes) out.write(`  - [${m.code}] ${m.message}\n`);
  } else out.write('MISMATCH, not explained\n');
  out.write(`hint: ${e.hint}\n`);
}

function main() {
  const [command, ...argv] = process.argv.slice(2);
  const { flags, rest } = parseArgs(argv);
  if (!command || command === 'help' || flags.help || command === '--help' || command === '-h') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  switch (command) {
    case 'sign': {
      const p = readParams(rest[0]);
      const t = flags['sign-type'];
      const s = sign(p, key(flags), t);
      if (flags.output !== undefined && flags.output !== 'xml') fail('--output takes only "xml"');
      if (flags.output === 'xml') {
        process.stdout.write(toXml({ ...p, sign: s }) + '\n');
        return;
      }
      const e = explainSign(p, key(flags), s);
      process.stdout.write(`string signed (stringA):\n  ${e.canonical}\n${t ?? p.sign_type ?? 'MD5'}: ${s}\n`);
      return;
    }
    case 'verify': {
      // The verdict uses the caller's sign type only: the input's own sign_type is what a
      // forger would set, so it never picks the algorithm (as in verifySign).
      const t = flags['sign-type'];
      if (!t) fail("verify needs --sign-type: pass your merchant's sign type: 'MD5' or 'HMAC-SHA256'");
      const { paySign, ...p } = readParams(rest[0]);
      const given = p.sign ?? paySign;
      if (!given) fail('the input has no "sign" (or "paySign") to verify', 1);
      if (verifySign({ ...p, sign: given }, key(flags), t)) {
        process.stdout.write(`OK: the sign matches (${t})\n`);
        return;
      }
      const e = explainSign(p, key(flags), given);
      if (e.matches) {
        // Right under the algorithm the input names, which is not the merchant's.
        process.stdout.write(`MISMATCH: the sign is a valid ${e.signType} sign (the input's sign_type), but your merchant signs with ${t}\n`);
      } else printExplanation(e);
      process.exit(1);
    }
    case 'explain': {
      if (!flags.sign) fail('explain needs --sign SIGN (the sign you got or sent)');
      const p = readParams(rest[0]);
      const e = explainSign(p, key(flags), flags.sign, { appSecret: flags['app-secret'], unifiedOrderSign: flags['unified-order-sign'] });
      printExplanation(e);
      process.exit(e.matches ? 0 : 1);
    }
    case 'explain-v3': {
      const parts = ['method', 'url', 'timestamp', 'nonce'];
      const missing = parts.filter((f) => flags[f] === undefined);
      if (missing.length && !flags.authorization) fail(`explain-v3 needs the request you signed: --${missing.join(', --')}`);
      if (missing.length && missing.length < parts.length) fail(`explain-v3 needs all of --method, --url, --timestamp, --nonce (missing --${missing.join(', --')})`);
      if (flags.body !== undefined && flags['body-file'] !== undefined) fail('pass --body or --body-file, not both');
      const body = flags['body-file'] !== undefined ? new Uint8Array(readFileSync(flags['body-file'])) : (flags.body ?? '');
      const ours = missing.length ? {} : { method: flags.method, url: flags.url, timestamp: flags.timestamp, nonceStr: flags.nonce, body };
      const e = explainV3({ ...ours, authorization: flags.authorization, certificateSerial: flags.serial }, readInput(rest[0]));
      printExplanationV3(e);
      process.exit(1);
    }
    case 'decrypt': {
      for (const f of ['appid', 'session-key', 'iv']) if (!flags[f]) fail(`decrypt needs --${f}`);
      const data = decryptUserData(flags.appid, flags['session-key'], readInput(rest[0]), flags.iv);
      process.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return;
    }
    case 'xml2json':
      process.stdout.write(JSON.stringify(parseXml(readInput(rest[0])), null, 2) + '\n');
      return;
    case 'json2xml':
      process.stdout.write(toXml(readParams(rest[0])) + '\n');
      return;
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

try {
  main();
} catch (e) {
  fail(`${e.code ? `[${e.code}] ` : ''}${e.message}`, 1);
}

// The APIv3 helpers in Node, through both entry points (ESM and CommonJS), on the cases
// headless Chromium runs too (v3_cases.mjs).
import test from 'node:test';
import { createRequire } from 'node:module';
import * as esm from 'wxedge';
import { cases } from './v3_cases.mjs';

const cjs = createRequire(import.meta.url)('wxedge');

for (const [name, f] of cases) {
  test(`${name} (ESM)`, () => f(esm));
  test(`${name} (CommonJS)`, () => f(cjs));
}

// The same package through require(): CommonJS users get the same functions and errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const wx = require('wxedge');

test('require("wxedge") works and signs the official example', () => {
  const params = { appid: 'wxd930ea5d5a258f4f', mch_id: '10000100', device_info: '1000', body: 'test', nonce_str: 'ibuaiVcKdpRxkhJA' };
  assert.equal(wx.sign(params, '192006250b4c09247ec02edce69f6a2d'), '9A0A8659F005D6984697E2CA0A9CF3B7');
  assert.throws(() => wx.parseXml('<!DOCTYPE x><xml/>'), { code: 'XML_DOCTYPE' });
});

test('ESM and CJS share one instance', async () => {
  const esm = await import('wxedge');
  assert.equal(esm.sign, wx.sign);
  assert.equal(typeof esm.default.sign, 'function');
});

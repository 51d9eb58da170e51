// What the browser tests run in the page, whichever way the package was loaded.
import { DEMO, DOC } from '../vectors.mjs';
import { runCases } from '../v3_cases.mjs';

export async function run(wx) {
  const results = {};
  try {
    await wx.init();
    const u = wx.decryptUserData(DEMO.appId, DEMO.sessionKey, DEMO.encryptedData, DEMO.iv);
    results.openId = u.openId;
    results.nickName = u.nickName;
    results.watermark = u.watermark;
    results.md5 = wx.sign(DOC.params, DOC.key, 'MD5');
    results.hmac = wx.sign(DOC.params, DOC.key, 'HMAC-SHA256');
    results.roundTrip = wx.parseXml(wx.toXml({ body: '学费 😀 ]]>' })).body;
    results.nonce = wx.nonceStr();
    try {
      wx.parseXml('<!DOCTYPE x><xml/>');
    } catch (e) {
      results.errorCode = e.code;
    }
    // APIv3: the same cases as in Node, with this engine's WebCrypto.
    results.v3 = await runCases(wx);
    results.userAgent = navigator.userAgent;
  } catch (e) {
    results.failure = `${e.code ?? ''} ${e.message}\n${e.stack}`;
  }
  window.__results = results;
  document.getElementById('out').textContent = JSON.stringify(results, null, 2);
}

// What the browser tests run in the page, whichever way the package was loaded.
import { DEMO, DOC } from '../vectors.mjs';

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
    results.userAgent = navigator.userAgent;
  } catch (e) {
    results.failure = `${e.code ?? ''} ${e.message}\n${e.stack}`;
  }
  window.__results = results;
  document.getElementById('out').textContent = JSON.stringify(results, null, 2);
}

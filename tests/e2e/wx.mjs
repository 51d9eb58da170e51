// A small `wx` for running the seed tutorial's mini-program client (seed-client/*.js,
// unchanged) against a real stack: wx.request goes to the worker over HTTP as the real
// one does (JSON body, `content-type: application/json`), and wx.login / wx.getUserInfo /
// wx.requestPayment go to wxsim's app side (/sim/login, /sim/userinfo, /sim/pay).
import { readFileSync } from 'node:fs';

const source = (name) => readFileSync(new URL(`./seed-client/${name}`, import.meta.url), 'utf8');

/**
 * Loads the seed client against `stack` as user `openid`. Returns the app, the page, and
 * `settle()`, which waits until every wx call the client started has finished.
 */
export function loadSeedClient(stack, openid) {
  const pending = new Set();
  const calls = []; // every wx.request: { url, data, status, body }
  const payments = []; // every wx.requestPayment outcome
  const storage = new Map();
  const track = (p) => {
    pending.add(p);
    p.finally(() => pending.delete(p));
    return p;
  };
  const appid = stack.vars.WECHAT_APPID;
  const sim = (path, json) =>
    fetch(stack.sim + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) })
      .then(async (r) => ({ status: r.status, body: await r.json() }));

  const wx = {
    login({ success, fail }) {
      track(sim('/sim/login', { appid, openid }).then((r) => (r.status === 200 ? success?.({ code: r.body.code }) : fail?.(r.body))));
    },
    request({ url, data, method = 'GET', header = {}, success, fail }) {
      const headers = { 'content-type': 'application/json', ...header };
      const init = { method, headers };
      let target = url;
      if (method === 'GET') target += `?${new URLSearchParams(data ?? {})}`;
      else init.body = JSON.stringify(data ?? {});
      track(
        fetch(target, init)
          .then(async (r) => {
            const text = await r.text();
            let body;
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
            calls.push({ url, data, status: r.status, body });
            // Like the real wx.request, success fires for any HTTP status.
            success?.({ statusCode: r.status, data: body, header: Object.fromEntries(r.headers) });
          })
          .catch((e) => fail?.({ errMsg: `request:fail ${e.message}` })),
      );
    },
    getSetting({ success }) {
      success?.({ authSetting: { 'scope.userInfo': true } });
    },
    checkSession({ success }) {
      success?.({ errMsg: 'checkSession:ok' });
    },
    getUserInfo({ success, fail }) {
      track(sim('/sim/userinfo', { appid, openid }).then((r) => (r.status === 200 ? success?.(r.body) : fail?.(r.body))));
    },
    requestPayment(params) {
      const { success, fail, ...fields } = params;
      track(
        sim('/sim/pay', { appId: appid, ...fields }).then((r) => {
          payments.push(r.body);
          return r.status === 200 ? success?.(r.body) : fail?.(r.body);
        }),
      );
    },
    setStorageSync(k, v) {
      storage.set(k, v);
    },
    getStorageSync(k) {
      return storage.get(k) ?? '';
    },
  };

  let app;
  let page;
  const App = (def) => {
    app = def;
    // The seed points at its Django server; this one points at the worker.
    app.globalData.baseurl = `${stack.api}/`;
  };
  const Page = (def) => {
    page = def;
  };
  const getApp = () => app;
  const quiet = { log() {}, error() {} };
  new Function('App', 'Page', 'getApp', 'wx', 'console', source('app.js'))(App, Page, getApp, wx, quiet);
  app.onLaunch();
  new Function('App', 'Page', 'getApp', 'wx', 'console', source('page.js'))(App, Page, getApp, wx, quiet);

  const settle = async () => {
    while (pending.size) await Promise.allSettled([...pending]);
  };
  return { app, page, wx, calls, payments, storage, settle };
}

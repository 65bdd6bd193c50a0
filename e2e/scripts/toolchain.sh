#!/usr/bin/env bash
# Checks (and where it can, installs) the toolchains the test suite needs:
# Rust with rustfmt and clippy, Go, Java 17 with Maven, Python 3, node 20+
# with npm (the TypeScript SDK).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
missing=()
for t in go java mvn python3 curl openssl node npm; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]} from apt"
    apt-get update -qq
    pkgs=()
    for t in "${missing[@]}"; do
      case $t in
        go) pkgs+=(golang-go) ;; java) pkgs+=(openjdk-17-jre-headless) ;;
        mvn) pkgs+=(maven) ;; python3) pkgs+=(python3 python3-venv) ;;
        curl) pkgs+=(curl) ;; openssl) pkgs+=(openssl) ;;
        node) pkgs+=(nodejs) ;; npm) pkgs+=(npm) ;;
      esac
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
  else
    die "missing tools: ${missing[*]}"
  fi
fi
log "toolchain ok: $(cargo --version), $(go version | cut -d' ' -f3), java $(java -version 2>&1 | head -1 | cut -d'"' -f2)"

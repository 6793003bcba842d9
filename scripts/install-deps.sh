#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what tether needs on Debian 12: build dependencies and dnsmasq (the
# demo's DNS), and with --test
# what the test suite uses (curl, Debian python3 and python3-websockets,
# redis-server, openssl, promtool, chromium, clang for the second compiler and
# the fuzzers, redis-sentinel, nghttp/h2load and python3-h2,
# python3-yaml for the deploy kit's manifests).
# Works as root, or as a user with sudo.
set -euo pipefail
want_test=0
for a in "$@"; do
    case $a in
    --test) want_test=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
    esac
done
if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(ca-certificates gcc make autoconf automake pkg-config libc6-dev
      libssl-dev libev-dev libxxhash-dev libhiredis-dev libc-ares-dev libnghttp2-dev
      curl procps python3 python3-websockets redis-server openssl dnsmasq-base)
if (( want_test )); then
    pkgs+=(clang libclang-rt-14-dev clang-format prometheus chromium
           iproute2 util-linux rsync redis-sentinel
           nghttp2-client python3-h2 python3-yaml)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    echo "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian packages start services under systemd; nothing here needs them.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now redis-server prometheus >/dev/null 2>&1 || true
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configure and build tether in BUILD_DIR (default: build/) from this checkout.
# Extra arguments go to configure (e.g. --enable-sanitizers).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$src/build}
cd "$src"
if [[ ! -x configure || configure.ac -nt configure || Makefile.am -nt configure ]]; then
    autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
"$src/configure" -q "$@"
make -j"$(nproc)"

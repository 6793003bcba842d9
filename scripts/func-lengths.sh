#!/bin/sh
# SPDX-License-Identifier: MIT
# List C function lengths (lines from the name line to the closing brace),
# longest first. The house format puts a definition's name at the start of a
# line and its closing brace in column 0, so a small awk pass is enough.
#   scripts/func-lengths.sh [-m MIN] FILE...   (default MIN 1: every function)
# Request-path check (nothing over ~60 lines):
#   scripts/func-lengths.sh -m 61 src/client*.c src/request*.c src/forward.c \
#       src/affinity*.c src/session*.c src/upstream_conn.c src/tunnel.c
min=1
if [ "$1" = "-m" ]; then
    min=$2
    shift 2
fi
awk -v min="$min" '
    FNR == 1 { name = "" }
    /^[A-Za-z_][A-Za-z0-9_]*\(/ && name == "" {
        name = $0; sub(/\(.*/, "", name); start = FNR; file = FILENAME; next
    }
    /^}/ && name != "" {
        n = FNR - start + 1
        if (n >= min) printf "%5d %s:%d %s\n", n, file, start, name
        name = ""
    }
    /;[ \t]*$/ && name != "" && FNR == start + 0 { name = "" }
' "$@" | sort -rn

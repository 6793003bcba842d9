#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Make throwaway TLS material for integration tests and the demo, in DIR:
#   ca.pem ca.key            a test CA (ECDSA P-256)
#   server.pem server.key    localhost, 127.0.0.1 and ::1 (ECDSA), signed by the CA
#   a.test.pem a.test.key    a.test (RSA 2048), for SNI tests
#   b.test.pem b.test.key    b.test and *.b.test (ECDSA), for SNI tests
#   ticket.key               160 random bytes: two session ticket keys (80 each)
# Usage: gen-certs.sh DIR [DAYS]   (DIR is created; existing files are replaced)
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DIR [DAYS]" >&2
    exit 2
fi
dir=$1
days=${2:-30}
mkdir -p "$dir"
cd "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# gen NAME KEYTYPE CN SAN: key NAME.key, certificate NAME.pem signed by the CA.
gen() {
    local name=$1 keytype=$2 cn=$3 san=$4
    case $keytype in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null ;;
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key" ;;
    esac
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" >"$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -CAserial "$tmp/ca.srl" -days "$days" -sha256 -extfile "$tmp/$name.ext" \
        -out "$name.pem" 2>/dev/null
    chmod 600 "$name.key"
}

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=tether test CA" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem
chmod 600 ca.key

gen server ec localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
gen a.test rsa a.test "DNS:a.test"
gen b.test ec b.test "DNS:b.test,DNS:*.b.test"

openssl rand -out ticket.key 160
chmod 600 ticket.key

echo "$0: wrote ca.pem server.pem a.test.pem b.test.pem (+ keys) and ticket.key in $dir"

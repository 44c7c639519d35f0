#!/usr/bin/env bash
# Certificate issuance with the CA key in each of its homes, side by side
# in one run: a key file, an encrypted key file, and a PKCS#11 token
# (Debian's SoftHSM2, a token of this run's own in a temp directory,
# removed afterwards). Installs softhsm2 when missing (as root).
#
# Usage: bench/cakeys.sh [COUNT]      (certificates per row; default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-2000}
if ! command -v softhsm2-util >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null
fi
cargo build --release --quiet -p idprov-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
softhsm2-util --init-token --free --label idprov-bench --so-pin 5678 --pin 1234 >/dev/null
printf '1234\n' > "$WORK/pin"
chmod 600 "$WORK/pin"
target/release/idprov-bench ca-keys --count "$COUNT" --token-label idprov-bench --pin-file "$WORK/pin"

#!/usr/bin/env bash
# Soak (README "Performance"): sustained provisioning and renewal for
# MINUTES (default 10) at a fixed rate from 254 loopback source addresses,
# each within the default per-source limits, while 127.0.0.2 floods the
# server with new connections; per minute: throughput, errors by kind,
# latency percentiles, server memory and CPU. The server runs with its
# default limits unless a config file is given (`--config FILE`).
#
# Usage: bench/soak.sh [MINUTES] [idprov-bench soak options...]
#   e.g. bench/soak.sh 10 --rate 100 --renew-rate 100 --flood 64
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
shift || true
cargo build --release --quiet -p idprov -p idprov-bench
exec target/release/idprov-bench soak --minutes "$MINUTES" "$@"

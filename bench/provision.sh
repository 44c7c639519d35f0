#!/usr/bin/env bash
# Provisioning benchmark (README "Performance"): RUNS complete runs of
# `idprov-bench run`, each measuring in the same run
#   * the ceilings: a do-nothing rustls server with the idprov server's own
#     certificate and the same generator and connection pattern (with and
#     without client certificates), ECDSA P-256 signatures/s, durable SQLite
#     commits/s with the registry's settings;
#   * the idprov server: OOB provisioning with a new TLS connection per
#     device, a renewal storm over mutual TLS, waiting polls;
#   * cfssl (Debian's golang-cfssl, `cfssl serve`) signing CSRs, without and
#     with client certificates;
# all with TLS session resumption off, on loopback, with the limits of
# bench/bench.toml. Prints the median of each figure over the runs.
#
# Usage: bench/provision.sh [RUNS] [idprov-bench run options...]
#   e.g. bench/provision.sh 3 --devices 10000 --renew-concurrency 500
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
if ! command -v cfssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq golang-cfssl >/dev/null 2>&1 || echo "warning: golang-cfssl not installed; cfssl phases skipped" >&2
fi
cargo build --release --quiet -p idprov -p idprov-bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for i in $(seq 1 "$RUNS"); do
    echo "== run $i of $RUNS"
    target/release/idprov-bench run --json "$WORK/run-$i.json" "$@"
done
python3 - "$WORK"/run-*.json <<'PY'
import json, statistics, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
med = statistics.median
print(f"\n== medians of {len(runs)} runs ({runs[0]['machine']['cores']} cores)")
print(f"ECDSA P-256 signatures/s: {med(r['signatures_per_second'][0] for r in runs):.0f} (one thread), "
      f"{med(r['signatures_per_second'][1] for r in runs):.0f} (all cores)")
print(f"durable SQLite commits/s: {med(r['durable_commits_per_second'] for r in runs):.0f}")
names = [p["name"] for p in runs[0]["phases"]]
print(f"\n| phase | req/s | % of ceiling | req per server CPU-s | % of ceiling's | p50 ms | p99 ms | max ms | server CPU s | server peak RSS MiB | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    ps = [p for r in runs for p in r["phases"] if p["name"] == n]
    g = lambda k: med(p[k] for p in ps if p.get(k) is not None) if any(p.get(k) is not None for p in ps) else None
    pct = g("percent_of_ceiling")
    cpct = g("cpu_percent_of_ceiling")
    errors = sum(sum(p["errors"].values()) for p in ps)
    fmt = lambda v, f: ("-" if v is None else format(v, f))
    print(f"| {n} | {fmt(g('throughput'), '.0f')} | {fmt(pct, '.0f') + '%' if pct is not None else '-'} | "
          f"{fmt(g('requests_per_cpu_second'), '.0f')} | {fmt(cpct, '.0f') + '%' if cpct is not None else '-'} | "
          f"{fmt(g('p50_ms'), '.1f')} | {fmt(g('p99_ms'), '.1f')} | {fmt(g('max_ms'), '.1f')} | "
          f"{fmt(g('server_cpu_seconds'), '.1f')} | {fmt(g('server_peak_rss_mib'), '.0f')} | {errors} |")
print("\nwhere the server's CPU went, by thread (median share over the runs):")
for n in names:
    ps = [p for r in runs for p in r["phases"] if p["name"] == n and p.get("threads")]
    if not ps:
        continue
    threads = sorted({t["name"] for p in ps for t in p["threads"]})
    share = {t: med([next((x["percent"] for x in p["threads"] if x["name"] == t), 0.0) for p in ps]) for t in threads}
    parts = [f"{t} {v:.0f}%" for t, v in sorted(share.items(), key=lambda kv: -kv[1]) if v >= 0.5]
    print(f"  {n}: {', '.join(parts)}")
PY

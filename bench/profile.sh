#!/usr/bin/env bash
# Where the server's CPU goes (README "Performance"): one `idprov-bench run`
# with `perf record` attached to the servers for each phase, then a
# report per phase under bench/profile-out/ (perf.data and the top of
# `perf report --no-children`). Needs perf (Debian: linux-perf) and root
# (or kernel.perf_event_paranoid <= 1). Timings of a profiled run are not
# benchmark figures: use bench/provision.sh for those.
#
# Usage: [PROFILE_CALLGRAPH=1] bench/profile.sh [idprov-bench run options...]
#   (PROFILE_CALLGRAPH=1 records call graphs from DWARF: much larger files)
#   e.g. bench/profile.sh --devices 2000 --first-contact 4000 --no-postgres --no-cfssl
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release --quiet -p idprov -p idprov-bench
OUT=bench/profile-out
rm -rf "$OUT" && mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# The hook runs at each phase's start and end with the servers' PIDs.
export IDPROV_BENCH_PHASE_HOOK='
  event=$1; tag=$(printf %s "$2" | tr -c "a-zA-Z0-9" _); shift 2
  case $event in
    start) pids=$(echo "$@" | tr " " ,)
           perf record -q -F 1999 ${PROFILE_CALLGRAPH:+--call-graph dwarf} -p "$pids" -o "'"$OUT"'/$tag.data" >/dev/null 2>&1 &
           echo $! > "'"$OUT"'/$tag.pid"; sleep 0.2 ;;
    end)   kill -INT "$(cat "'"$OUT"'/$tag.pid")"
           while kill -0 "$(cat "'"$OUT"'/$tag.pid")" 2>/dev/null; do sleep 0.1; done ;;
  esac'
target/release/idprov-bench run "$@"
for data in "$OUT"/*.data; do
    report=${data%.data}.txt
    perf report -i "$data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null \
        | grep -v '^$' | head -120 > "$report" || true
    echo "== $(basename "$report")"
    grep -E '^ +[0-9]' "$report" | head -15
done

#!/usr/bin/env bash
# Bulk-import benchmark: ROWS generated rows, end to end through the CLI
# (CSV parsing, TLS upload, validation, sealing, one SQLite transaction with
# synchronous=FULL) into a running server on loopback, RUNS times, each into
# a fresh server. Reports the median, and beside it the machine's own
# baseline measured in the same run: the same rows inserted by Python's
# sqlite3 into a WAL database with synchronous=FULL in one transaction.
#
# Usage: bench/import.sh [ROWS] [RUNS]      (defaults: 1000000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RUNS=${2:-3}
cargo build --release --quiet -p idprov
BIN=$PWD/target/release/idprov
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

python3 - "$ROWS" "$WORK/rows.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("deviceID,secret,validUntil\n")
    for i in range(n):
        f.write(f"bench-{i:08d},secret-value-{i:012d},\n")
PY
echo "rows: $ROWS ($(du -h "$WORK/rows.csv" | cut -f1) of CSV)"

baseline=$(python3 - "$ROWS" "$WORK/baseline.db" <<'PY'
import sqlite3, sys, time, os
n, path = int(sys.argv[1]), sys.argv[2]
c = sqlite3.connect(path, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=FULL")
c.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, device_id TEXT UNIQUE, sealed BLOB, key_id TEXT, created_at INT, valid_until INT, created_by TEXT)")
blob = os.urandom(48)
t = time.perf_counter()
c.execute("BEGIN")
c.executemany("INSERT INTO s (device_id, sealed, key_id, created_at, valid_until, created_by) VALUES (?,?,?,?,?,?)",
              ((f"bench-{i:08d}", blob, "k", 0, 0, "admin:admin") for i in range(n)))
c.execute("COMMIT")
print(f"{time.perf_counter() - t:.2f}")
PY
)
echo "baseline: SQLite alone (Python sqlite3, one transaction, WAL, synchronous=FULL): ${baseline}s"

times=()
for run in $(seq 1 "$RUNS"); do
    DATA=$WORK/data-$run
    "$BIN" serve --no-dns-sd --data-dir "$DATA" --listen "127.0.0.1:$PORT" > "$WORK/server-$run.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 100); do
        "$BIN" oob list --limit 1 --server "127.0.0.1:$PORT" --data-dir "$DATA" >/dev/null 2>&1 && break
        sleep 0.1
    done
    idle=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status)
    start=$(date +%s.%N)
    "$BIN" oob import "$WORK/rows.csv" --json --server "127.0.0.1:$PORT" --data-dir "$DATA" > "$WORK/result-$run.json"
    end=$(date +%s.%N)
    peak=$(awk '/VmHWM/ {print $2}' /proc/$SERVER/status)
    accepted=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accepted'])" "$WORK/result-$run.json")
    secs=$(python3 -c "print(f'{$end - $start:.2f}')")
    times+=("$secs")
    echo "run $run: ${secs}s, $accepted rows accepted, $(python3 -c "print(int($ROWS/($end-$start)))") rows/s, server RSS idle $((idle/1024)) MiB, peak $((peak/1024)) MiB"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    SERVER=
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: ${median}s for $ROWS rows = $(python3 -c "print(int($ROWS/$median))") rows/s (baseline SQLite alone: ${baseline}s)"

#!/usr/bin/env bash
# Runs every fuzz target one after another (one fuzzing process at a time),
# SECONDS_PER_TARGET each (default 900), then minimizes its corpus.
# Logs go to fuzz/target/fuzz-logs/ (ignored by git).
# Usage (from anywhere): bash fuzz/run-all.sh [target ...]
set -u
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_TARGET:-900}
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(canonical_encoder provision_request public_key bulk_import label_uri config)
max_len() {
  case "$1" in
    label_uri) echo 4096 ;;
    config|public_key) echo 16384 ;;
    *) echo 65536 ;;
  esac
}
for t in "${targets[@]}"; do
  echo "[$(date -u +%FT%TZ)] start $t" | tee -a "$logs/summary.txt"
  start=$(date +%s)
  cargo fuzz run -s none "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -timeout=10 -print_final_stats=1 > "$logs/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  echo "[$(date -u +%FT%TZ)] end $t rc=$rc wall=$((end-start))s" | tee -a "$logs/summary.txt"
  cargo fuzz cmin -s none "$t" -- -rss_limit_mb=2048 -max_len="$(max_len "$t")" -timeout=10 > "$logs/$t.cmin.log" 2>&1
  echo "[$(date -u +%FT%TZ)] cmin $t rc=$? corpus=$(ls fuzz/corpus/$t | wc -l)" | tee -a "$logs/summary.txt"
done

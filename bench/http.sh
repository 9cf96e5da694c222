#!/usr/bin/env bash
# bench/http.sh — the HTTP layer and the store's group commit.
#   1. GET /health/live: the HTTP path with no store work.
#   2. POST /bench/write (bench builds only): one row per request through the
#      writer thread, connection suspended until its group commit; the mean
#      batch size comes from refuge_store_commit_batch_size.
#   3. Idle RSS, and time from exec to the first 200 on /health/ready.
# Parameters are fixed so runs compare: wrk -t2, 64 connections, 10 s each.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-64}
dir=$(mktemp -d)
trap 'stop_node ${NODE_PID:-0}; rm -rf "$dir"' EXIT

port=$(free_port)
start_node bench "$dir/n" "$port"
live=$(wrk_run "http://127.0.0.1:$port/health/live" "" "$CONNS" "$SECS")
b0=$(metric "$port" refuge_store_commit_batch_size_count); s0=$(metric "$port" refuge_store_commit_batch_size_sum)
write=$(wrk_run "http://127.0.0.1:$port/bench/write" "$ROOT/bench/wrk/post_empty.lua" "$CONNS" "$SECS")
b1=$(metric "$port" refuge_store_commit_batch_size_count); s1=$(metric "$port" refuge_store_commit_batch_size_sum)
batch=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) 'BEGIN { if (b > 0) printf "%.1f", s / b; else print "n/a" }')
sleep 1
rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$NODE_PID/status)
stop_node "$NODE_PID"; NODE_PID=

# exec -> first 200 on /health/ready, existing data dir, median of 5
starts=()
for i in 1 2 3 4 5; do
  p=$(free_port)
  sed -i "s/^listen = .*/listen = 127.0.0.1:$p/" "$dir/n/refuge.conf"
  t0=$(date +%s%N)
  "$REFUGED" -c "$dir/n/refuge.conf" & pid=$!
  until curl -fs "http://127.0.0.1:$p/health/ready" >/dev/null 2>&1; do sleep 0.002; done
  t1=$(date +%s%N)
  starts+=($(( (t1 - t0) / 1000000 )))
  stop_node "$pid"
done
startup=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 3p)

{
  echo "### HTTP and group commit (bench/http.sh, wrk -t2 -c$CONNS -d${SECS}s)"
  echo
  echo "| path | req/s | p50 | p99 | notes |"
  echo "|---|---|---|---|---|"
  echo "| GET /health/live | $(echo "$live" | field rps) | $(echo "$live" | field p50_us) µs | $(echo "$live" | field p99_us) µs | no store work |"
  echo "| POST /bench/write | $(echo "$write" | field rps) | $(echo "$write" | field p50_us) µs | $(echo "$write" | field p99_us) µs | one row per request; mean group-commit batch $batch jobs |"
  echo
  echo "- Idle RSS after the runs: $((rss_kib / 1024)) MiB ($rss_kib KiB)"
  echo "- exec → first 200 on /health/ready (median of 5): ${startup} ms"
} | tee "$OUT/http.md"

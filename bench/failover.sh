#!/usr/bin/env bash
# bench/failover.sh — RTO, RPO and the switchover pause as a client sees
# them: the two-region loopback deployment of `make demo` (mTLS replication,
# HAProxy front door), one `refugectl drill` per replication mode: client load
# through the front door, kill -9 of region A, failover to B, rejoin A,
# switchover back. Writes bench/out/failover.md and each drill's JSON report
# under bench/out/drill/MODE/ (the drill timeline plot reads it).
# Parameters: BENCH_DRILL_SECONDS (default 6) of load per drill.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_DRILL_SECONDS:-6}
PY=/usr/bin/python3
run=$(mktemp -d)
trap 'REFUGE_SRC="$ROOT" "$PY" "$ROOT/scripts/refuge_deploy.py" down "$run" --build "$BUILD" >/dev/null 2>&1 || true; rm -rf "$run"' EXIT
# below the kernel's ephemeral range (32768+), where a client socket may hold a port
base=$((20000 + RANDOM % 10000))
rows=()
for mode in async remote_apply; do
  REFUGE_SRC="$ROOT" "$PY" "$ROOT/scripts/refuge_deploy.py" down "$run" --build "$BUILD" >/dev/null 2>&1 || true
  rm -rf "$run"; mkdir -p "$run"
  for attempt in 1 2 3; do     # a port taken by something else: try another base
    if REFUGE_SRC="$ROOT" "$PY" "$ROOT/scripts/refuge_deploy.py" up "$run" --base-port "$base" --mode "$mode" \
         --build "$BUILD" >"$run/up.json"; then break; fi
    REFUGE_SRC="$ROOT" "$PY" "$ROOT/scripts/refuge_deploy.py" down "$run" --build "$BUILD" >/dev/null 2>&1 || true
    rm -rf "$run"; mkdir -p "$run"
    base=$((base + 317))
  done
  REFUGE_SRC="$ROOT" "$PY" "$ROOT/scripts/refuge_deploy.py" seed "$run" --build "$BUILD" >/dev/null
  "$BUILD/refugectl" drill --mode "$mode" --duration "$SECS" --report "$run/report" -c "$run/cluster.conf" \
    >"$run/drill.out" 2>&1 || true
  line=$(grep '^DRILL ' "$run/drill.out" | tail -n 1 || true)
  mkdir -p "$OUT/drill/$mode"
  [ -f "$run/report/drill.json" ] && cp "$run/report/drill.json" "$OUT/drill/$mode/drill.json"
  row=$("$PY" - "$run/report/drill.json" "$mode" "$line" <<'PY'
import json, sys
path, mode, line = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    d = json.load(open(path))["result"]
except (OSError, ValueError, KeyError):
    print("| %s | drill failed | | | | | %s |" % (mode, line or "no DRILL line"))
    sys.exit(0)
print("| %s | %s ms | %s | %s ms | %s ms | %s | %s |" % (
    mode, d["rto_ms"], d["rpo_lost_writes"], d["rpo_window_ms"], d.get("switchover_pause_ms", "-"),
    "equal" if d.get("data_equal") else "DIFFERENT", line))
PY
)
  rows+=("$row")
  base=$((base + 100))
done

{
  echo "### Failover, rejoin and switchover as a client sees them (bench/failover.sh, ${SECS} s of load per drill)"
  echo
  echo "| mode | RTO (first failed → first successful request) | acknowledged writes lost | RPO window | switchover: longest gap between successful writes | data after | DRILL line |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- Two refuged on loopback with mTLS replication, HAProxy 2.6 in front (health check every 100 ms,"
  echo "  runtime-API switching by refugectl), kill -9 of the active; the client counts every write it was told succeeded."
  echo "- Peers for scale: the deployment this project follows takes minutes to hours (database promotion 5–10 min,"
  echo "  cluster start 5–10 min, load balancer 5 min); Patroni 30–45 s; pg_auto_failover 20–30 s."
} | tee "$OUT/failover.md"

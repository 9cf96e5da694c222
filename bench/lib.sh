# Shared helpers for the benchmark scripts (sourced).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${REFUGE_BUILD:-$ROOT/build-release}
REFUGED=$BUILD/refuged
OUT=${BENCH_OUT:-$ROOT/bench/out}
mkdir -p "$OUT"

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start_node NAME DIR PORT [extra conf lines...] -> sets NODE_PID
start_node() {
  local name=$1 dir=$2 port=$3; shift 3
  mkdir -p "$dir"
  {
    printf '[node]\nname = %s\nregion = bench\ndata_dir = %s\ninitial_role = active\n' "$name" "$dir"
    printf '[http]\nlisten = 127.0.0.1:%s\nthreads = %s\n' "$port" "${HTTP_THREADS:-2}"
    printf '[log]\nlevel = warn\nfile = %s/refuged.log\n' "$dir"
    for l in "$@"; do printf '%s\n' "$l"; done
  } > "$dir/refuge.conf"
  "$REFUGED" -c "$dir/refuge.conf" &
  NODE_PID=$!
  wait_ready "$port"
}

wait_ready() {
  local port=$1
  for _ in $(seq 1 500); do
    if curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then return 0; fi
    sleep 0.02
  done
  echo "node on $port did not become ready" >&2; return 1
}

stop_node() { [ -n "${1:-}" ] && [ "$1" != 0 ] || return 0; kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk_run URL SCRIPT CONNS SECONDS -> prints WRK_RESULT line
wrk_run() {
  local url=$1 script=$2 conns=$3 secs=$4 tmp
  tmp=$(mktemp --suffix=.lua)
  if [ -n "$script" ]; then cat "$script" > "$tmp"; fi
  cat "$ROOT/bench/wrk/report.lua" >> "$tmp"
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$tmp" "$url" | grep WRK_RESULT
  rm -f "$tmp"
}

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p"; }

metric() { # metric PORT NAME -> value (sum of series)
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n"{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

machine() {
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- Kernel: $(uname -r); $(. /etc/os-release; echo "$PRETTY_NAME")"
}

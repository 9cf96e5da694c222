# Shared helpers for the benchmark scripts (sourced).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${REFUGE_BUILD:-$ROOT/build-release}
REFUGED=$BUILD/refuged
OUT=${BENCH_OUT:-$ROOT/bench/out}
mkdir -p "$OUT"

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# node_conf NAME DIR PORT [extra conf lines...] -> writes DIR/refuge.conf
# (a single active node on 127.0.0.1:PORT, HTTP_THREADS threads, default 2)
node_conf() {
  local name=$1 dir=$2 port=$3; shift 3
  mkdir -p "$dir"
  {
    printf '[node]\nname = %s\nregion = bench\ndata_dir = %s\ninitial_role = active\n' "$name" "$dir"
    printf '[http]\nlisten = 127.0.0.1:%s\nthreads = %s\n' "$port" "${HTTP_THREADS:-2}"
    printf '[log]\nlevel = warn\nfile = %s/refuged.log\n' "$dir"
    for l in "$@"; do printf '%s\n' "$l"; done
  } > "$dir/refuge.conf"
}

# start_node NAME DIR PORT [extra conf lines...] -> sets NODE_PID
start_node() {
  local dir=$2 port=$3
  node_conf "$@"
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
# wrk threads: WRK_THREADS (default 2), never more than CONNS.
wrk_run() {
  local url=$1 script=$2 conns=$3 secs=$4 tmp threads=${WRK_THREADS:-2}
  [ "$threads" -le "$conns" ] || threads=$conns
  tmp=$(mktemp --suffix=.lua)
  if [ -n "$script" ]; then cat "$script" > "$tmp"; fi
  cat "$ROOT/bench/wrk/report.lua" >> "$tmp"
  wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$tmp" "$url" | grep WRK_RESULT
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

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }   # rss_kib PID
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }   # peak RSS

# bench_json KEY[.KEY...] < JSON -> the value
bench_json() {
  /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"
}

# admin_token BASE DATA_DIR [SCOPE] -> a bootstrap-admin access token
admin_token() {
  local id secret
  id=$(bench_json client_id < "$2/bootstrap-admin.json")
  secret=$(bench_json client_secret < "$2/bootstrap-admin.json")
  curl -fsS -u "$id:$secret" -d grant_type=client_credentials -d "scope=${3:-refuge:admin}" "$1/oauth2/token" |
    bench_json access_token
}

# bench_client BASE ADMIN_TOKEN ID FORMAT -> the secret of a new confidential
# client_credentials client issuing FORMAT (jwt|opaque) tokens, scope api:read
bench_client() {
  curl -fsS -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$3\",\"name\":\"$3\",\"type\":\"confidential\",\"scopes\":[\"api:read\"],\"default_scopes\":[\"api:read\"],\"grant_types\":[\"client_credentials\"],\"token_format\":\"$4\"}" \
    "$1/admin/v1/clients" | bench_json client_secret
}

# oidc_peer_ready -> installs bench/peers/oidc-provider's node_modules when
# missing or when the lockfile changed (as bench/token.sh does)
oidc_peer_ready() {
  local pdir=$ROOT/bench/peers/oidc-provider stamp want
  stamp=$pdir/node_modules/.refuge-lockfile-sha256
  want=$(sha256sum "$pdir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    (cd "$pdir" && npm ci --no-audit --no-fund --loglevel=error) >&2 || return 1
    echo "$want" > "$stamp"
  fi
}

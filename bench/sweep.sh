#!/usr/bin/env bash
# bench/sweep.sh — client_credentials JWT ES256 throughput against
# concurrency, refuged and npm oidc-provider on one plot (issue 11).
# The same load as bench/token.sh's first row (POST /oauth2/token, HTTP
# Basic, scope api:read, RFC 9068 JWT signed ES256, no store write) at
# wrk -c 1, 4, 16, 64, 128 (wrk -t2, -t1 at c = 1), BENCH_SECONDS each
# (default 5) after a 1 s warm-up per server; refuged with its 2 HTTP
# threads, then oidc-provider with 2 cluster workers (bench/peers/
# oidc-provider), never both at once. Writes bench/out/sweep.md and
# bench/out/sweep.dat (columns: conns, refuge rps, refuge p99 µs, peer rps,
# peer p99 µs) for bench/plot/sweep.gp. Takes about 70 s.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-5}
CONNS_LIST=${BENCH_SWEEP_CONNS:-"1 4 16 64 128"}
PEER_DIR=$ROOT/bench/peers/oidc-provider
dir=$(mktemp -d)
PEER_PID=
cleanup() {
  if [ -n "${NODE_PID:-}" ]; then stop_node "$NODE_PID"; fi
  if [ -n "$PEER_PID" ]; then kill -TERM "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "sweep.sh: $*" >&2; exit 1; }
[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v wrk >/dev/null || die "wrk not found (scripts/install-deps)"

sweep() { # URL LABEL -> lines "conns rps p99_us errors"
  local c r
  wrk_run "$1" "$ROOT/bench/wrk/token_cc.lua" 16 1 >/dev/null
  for c in $CONNS_LIST; do
    r=$(wrk_run "$1" "$ROOT/bench/wrk/token_cc.lua" "$c" "$SECS")
    echo "$c $(echo "$r" | field rps) $(echo "$r" | field p99_us) $(echo "$r" | field errors)"
    echo "sweep.sh: $2 c=$c $r" >&2
  done
}

# ------------------------------------------------------------------ refuged
port=$(free_port)
base=http://127.0.0.1:$port
start_node bench "$dir/n" "$port"
tok=$(admin_token "$base" "$dir/n") || die "no admin token"
secret=$(bench_client "$base" "$tok" bench-jwt jwt) || die "cannot create the JWT client"
export TOKEN_SCOPE=api:read TOKEN_BASIC
TOKEN_BASIC=$(printf '%s' "bench-jwt:$secret" | base64 -w0)
sweep "$base/oauth2/token" refuge > "$dir/refuge"
stop_node "$NODE_PID"; NODE_PID=

# ------------------------------------------------------------ oidc-provider
oidc_peer_ready || die "npm ci failed in $PEER_DIR"
peer_ver=$(node -p 'require(process.argv[1]).version' "$PEER_DIR/node_modules/oidc-provider/package.json")
pport=$(free_port)
PORT=$pport CLIENT_ID=bench-peer CLIENT_SECRET=bench-peer-secret WORKERS=2 \
  node "$PEER_DIR/server.mjs" > "$dir/peer.log" 2>&1 &
PEER_PID=$!
for _ in $(seq 1 300); do grep -q '^listening' "$dir/peer.log" && break; sleep 0.05; done
grep -q '^listening' "$dir/peer.log" || { cat "$dir/peer.log" >&2; die "oidc-provider did not start"; }
TOKEN_BASIC=$(printf '%s' bench-peer:bench-peer-secret | base64 -w0)
curl -fsS -u bench-peer:bench-peer-secret -d grant_type=client_credentials -d scope=api:read \
  "http://127.0.0.1:$pport/token" | grep -q access_token || die "oidc-provider issued no token"
sweep "http://127.0.0.1:$pport/token" oidc-provider > "$dir/peer"
kill -TERM "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=

# ------------------------------------------------------------------- report
{
  echo "# conns refuge_rps refuge_p99_us peer_rps peer_p99_us"
  join "$dir/refuge" "$dir/peer" | awk '{ print $1, $2, $3, $5, $6 }'
} > "$OUT/sweep.dat"
{
  echo "### Throughput against concurrency: client_credentials JWT ES256 (bench/sweep.sh, wrk -t2, ${SECS} s per point)"
  echo
  echo "| connections | refuge req/s | refuge p99 | oidc-provider $peer_ver req/s | oidc-provider p99 | ratio | errors (refuge / peer) |"
  echo "|---|---|---|---|---|---|---|"
  join "$dir/refuge" "$dir/peer" | awk '{ printf "| %s | %s | %.2f ms | %s | %.2f ms | %.1f× | %s / %s |\n",
    $1, $2, $3 / 1000, $5, $6 / 1000, ($5 > 0 ? $2 / $5 : 0), $4, $7 }'
  echo
  echo "- oidc-provider: Node $(node --version), production mode, 2 cluster workers; wrk shares the 2 cores with the server in both cases."
  echo
  echo "![client_credentials JWT: req/s against connections](img/sweep.svg)"
} | tee "$OUT/sweep.md"

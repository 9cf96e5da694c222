#!/usr/bin/env bash
# bench/repl.sh — replication (issue 5): two refuged processes, a active and
# b standby, plaintext replication on loopback (TLS costs are bench/http.sh's
# concern), shared master key and public_url as two regions have.
#   1. Replicated writes/s in each mode: POST /scim2/Users (no password: one
#      users row + one user_emails row per request, one write job), wrk -t2
#      -c8 (8 clients, like the PostgreSQL reference), for async,
#      remote_write, remote_apply, and the same node with no peer at all
#      ("off": capture runs, nothing is shipped). Every run ends with the
#      standby caught up (checked: same lsn).
#   2. Lag at a fixed offered load (wrk's delay() paces each of 8
#      connections), async: commit -> standby ACK of the newest acknowledged
#      record, from a's histogram refuge_repl_ack_latency_seconds (bucket
#      bounds, so "<= 2 ms" means the 1..2 ms bucket). Loopback, then with
#      20 ms one-way delay (tc netem on both ends of a veth pair between two
#      network namespaces; needs root and `ip netns`; skipped otherwise).
#   3. Promote to first write: POST /admin/v1/node/promote on b, then POSTs
#      until the first 201; median of 3.
#   4. The cost of capture alone (no network): tests/unit/test_repl_capture
#      prints writes/s with and without capture on the same store, same run.
#   5. PostgreSQL 15 streaming replication in the same run, as the reference
#      (bench/peers/postgres-repl.sh; needs root and PostgreSQL 15).
# Parameters: BENCH_SECONDS (default 5), BENCH_RATE_DELAY_MS (default 1).
# Writes bench/out/repl.md. Takes about 3 minutes.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-5}
DELAY_MS=${BENCH_RATE_DELAY_MS:-1}
PY=/usr/bin/python3
dir=$(mktemp -d)
PIDS=()
NETNS=0
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "$NETNS" = 1 ]; then ip netns del rb-a 2>/dev/null || true; ip netns del rb-b 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "repl.sh: $*" >&2; exit 1; }
[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v wrk >/dev/null || die "wrk not found"

# ------------------------------------------------------------------ nodes
# node_conf NAME ROLE HTTP_ADDR REPL_ADDR PEER_ADDR MODE DIR
node_conf() {
  local name=$1 role=$2 http=$3 listen=$4 peer=$5 mode=$6 d=$7
  mkdir -p "$d"
  {
    printf '[node]\nname = %s\nregion = region-%s\ndata_dir = %s\ninitial_role = %s\nmaster_key_file = %s/master.key\n' \
      "$name" "$name" "$d" "$role" "$dir"
    printf '[http]\nlisten = %s\nthreads = %s\npublic_url = https://idp.bench\n' "$http" "${HTTP_THREADS:-2}"
    printf '[log]\nlevel = warn\nfile = %s/refuged.log\n' "$d"
    if [ -n "$peer" ]; then
      printf '[replication]\nlisten = %s\npeer = %s\nmode = %s\nmax_lag_ms = 10s\ninsecure_plaintext = true\n' \
        "$listen" "$peer" "$mode"
    fi
  } > "$d/refuge.conf"
}
# run_node DIR [NETNS] -> LAST_PID
run_node() {
  if [ -n "${2:-}" ]; then ip netns exec "$2" "$REFUGED" -c "$1/refuge.conf" & else "$REFUGED" -c "$1/refuge.conf" & fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
wait_live() { # URL [NETNS]
  local ns=()
  [ -n "${2:-}" ] && ns=(ip netns exec "$2")
  for _ in $(seq 1 500); do
    if "${ns[@]}" curl -fs "$1/health/live" >/dev/null 2>&1; then return 0; fi
    sleep 0.02
  done
  die "node at $1 did not start"
}
token() { # URL [NETNS]
  local ns=() creds id secret
  [ -n "${2:-}" ] && ns=(ip netns exec "$2")
  creds="$A_DIR/bootstrap-admin.json"
  id=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$creds")
  secret=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$creds")
  "${ns[@]}" curl -fsS -u "$id:$secret" -d grant_type=client_credentials -d "scope=refuge:admin scim:write" \
    "$1/oauth2/token" | $PY -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
repl_lsn() { # URL TOKEN [NETNS]
  local ns=()
  [ -n "${3:-}" ] && ns=(ip netns exec "$3")
  "${ns[@]}" curl -fsS -H "Authorization: Bearer $2" "$1/admin/v1/node/replication" | $PY -c 'import json,sys; print(json.load(sys.stdin)["lsn"])'
}
wait_caught_up() { # A_URL B_URL TOKEN [NS_A NS_B]
  local la lb
  for _ in $(seq 1 600); do
    la=$(repl_lsn "$1" "$3" "${4:-}"); lb=$(repl_lsn "$2" "$3" "${5:-}")
    [ "$la" = "$lb" ] && { echo "$la"; return 0; }
    sleep 0.05
  done
  die "standby did not catch up ($la vs $lb)"
}

# start_pair MODE [NS_A NS_B ADDR_A ADDR_B] -> A_URL B_URL A_DIR B_DIR TOK
start_pair() {
  local mode=$1 nsa=${2:-} nsb=${3:-} ha=${4:-127.0.0.1} hb=${5:-127.0.0.1}
  local pa pb ra rb
  pa=$(free_port); pb=$(free_port); ra=$(free_port); rb=$(free_port)
  A_DIR=$dir/$mode-a-$RANDOM; B_DIR=$dir/$mode-b-$RANDOM
  rm -f "$dir/master.key"
  node_conf a active "$ha:$pa" "$ha:$ra" "$hb:$rb" "$mode" "$A_DIR"
  node_conf b standby "$hb:$pb" "$hb:$rb" "$ha:$ra" "$mode" "$B_DIR"
  A_URL=http://$ha:$pa; B_URL=http://$hb:$pb
  run_node "$A_DIR" "$nsa"; A_PID=$LAST_PID; wait_live "$A_URL" "$nsa"
  run_node "$B_DIR" "$nsb"; B_PID=$LAST_PID; wait_live "$B_URL" "$nsb"
  TOK=$(token "$A_URL" "$nsa")
  wait_caught_up "$A_URL" "$B_URL" "$TOK" "$nsa" "$nsb" >/dev/null
}
stop_pair() { kill -9 "$A_PID" "$B_PID" 2>/dev/null || true; wait "$A_PID" "$B_PID" 2>/dev/null || true; }

# ------------------------------------------------------------------ load
cat > "$dir/create.lua" <<'EOF'
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
counter = 0
local prefix = os.getenv("REPL_PREFIX")
local pace = tonumber(os.getenv("REPL_DELAY_MS") or "0")
local hdrs = { ["Authorization"] = "Bearer " .. os.getenv("REPL_TOKEN"),
               ["Content-Type"] = "application/scim+json" }
request = function()
  local name = string.format("%s-%d-%d", prefix, tid, counter)
  counter = counter + 1
  return wrk.format("POST", "/scim2/Users", hdrs,
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","emails":[{"value":"' .. name .. '@bench.example","primary":true}]}')
end
if pace > 0 then delay = function() return pace end end
EOF
# load URL PREFIX CONNS SECONDS [DELAY_MS] [NETNS] -> WRK_RESULT line
load() {
  local ns=() tmp
  [ -n "${6:-}" ] && ns=(ip netns exec "$6")
  tmp=$(mktemp --suffix=.lua)
  cat "$dir/create.lua" "$ROOT/bench/wrk/report.lua" > "$tmp"
  REPL_PREFIX=$2 REPL_TOKEN=$TOK REPL_DELAY_MS=${5:-0} "${ns[@]}" wrk -t2 -c"$3" -d"$4s" --latency -s "$tmp" "$1" | grep WRK_RESULT
  rm -f "$tmp"
}
hist() { # URL [NETNS] -> "le count" lines of refuge_repl_ack_latency_seconds
  local ns=()
  [ -n "${2:-}" ] && ns=(ip netns exec "$2")
  "${ns[@]}" curl -fs "$1/metrics" | sed -n 's/^refuge_repl_ack_latency_seconds_bucket{le="\([^"]*\)"} \(.*\)$/\1 \2/p'
}
pct() { # BEFORE AFTER P -> bucket bound in ms of the P-th percentile of the difference
  $PY - "$1" "$2" "$3" <<'EOF'
import sys
def parse(s):
    return [(float("inf") if le == "+Inf" else float(le), float(c)) for le, c in (l.split() for l in s.strip().splitlines())]
b, a, p = parse(sys.argv[1]), parse(sys.argv[2]), float(sys.argv[3])
d = [(le, ca - cb) for (le, ca), (_, cb) in zip(a, b)]
total = d[-1][1]
if total <= 0: print("n/a"); sys.exit()
for le, c in d:
    if c >= p / 100 * total:
        print("> 5000 ms" if le == float("inf") else "<= %g ms" % (le * 1000)); break
EOF
}

# ------------------------------------------------------ 1. writes per mode
rows=()
for mode in off async remote_write remote_apply; do
  if [ "$mode" = off ]; then
    p=$(free_port); A_DIR=$dir/off; rm -f "$dir/master.key"
    node_conf a active "127.0.0.1:$p" "" "" async "$A_DIR"
    A_URL=http://127.0.0.1:$p
    run_node "$A_DIR"; A_PID=$LAST_PID; wait_live "$A_URL"
    TOK=$(token "$A_URL")
    r=$(load "$A_URL" "off" 8 "$SECS")
    kill -9 "$A_PID"; wait "$A_PID" 2>/dev/null || true
    rows+=("| off (no peer) | $(echo "$r" | field rps) | $(( $(echo "$r" | field p50_us) / 1000 )).$(( $(echo "$r" | field p50_us) % 1000 / 100 )) ms | $(( $(echo "$r" | field p99_us) / 1000 )).$(( $(echo "$r" | field p99_us) % 1000 / 100 )) ms | $(echo "$r" | field errors) | capture only |")
    continue
  fi
  start_pair "$mode"
  r=$(load "$A_URL" "$mode" 8 "$SECS")
  lsn=$(wait_caught_up "$A_URL" "$B_URL" "$TOK")
  stop_pair
  rows+=("| $mode | $(echo "$r" | field rps) | $(( $(echo "$r" | field p50_us) / 1000 )).$(( $(echo "$r" | field p50_us) % 1000 / 100 )) ms | $(( $(echo "$r" | field p99_us) / 1000 )).$(( $(echo "$r" | field p99_us) % 1000 / 100 )) ms | $(echo "$r" | field errors) | standby caught up at lsn $lsn |")
done

# ------------------------------------------------- 2. lag at offered load
lag_run() { # LABEL [NS_A NS_B ADDR_A ADDR_B]
  local h0 h1 r
  start_pair async "${2:-}" "${3:-}" "${4:-127.0.0.1}" "${5:-127.0.0.1}"
  h0=$(hist "$A_URL" "${2:-}")
  r=$(load "$A_URL" "lag$RANDOM" 8 "$SECS" "$DELAY_MS" "${2:-}")
  h1=$(hist "$A_URL" "${2:-}")
  wait_caught_up "$A_URL" "$B_URL" "$TOK" "${2:-}" "${3:-}" >/dev/null
  stop_pair
  lagrows+=("| $1 | $(echo "$r" | field rps) | $(pct "$h0" "$h1" 50) | $(pct "$h0" "$h1" 99) |")
}
lagrows=()
lag_run "loopback"
if [ "$(id -u)" = 0 ] && command -v tc >/dev/null && ip netns add rb-a 2>/dev/null; then
  NETNS=1
  ip netns add rb-b
  ip link add rb-va type veth peer name rb-vb
  ip link set rb-va netns rb-a; ip link set rb-vb netns rb-b
  ip -n rb-a addr add 10.77.0.1/24 dev rb-va; ip -n rb-b addr add 10.77.0.2/24 dev rb-vb
  for ns in rb-a rb-b; do ip -n $ns link set lo up; done
  ip -n rb-a link set rb-va up; ip -n rb-b link set rb-vb up
  if ip netns exec rb-a tc qdisc add dev rb-va root netem delay 20ms 2>/dev/null &&
     ip netns exec rb-b tc qdisc add dev rb-vb root netem delay 20ms 2>/dev/null; then
    lag_run "20 ms one-way (netem)" rb-a rb-b 10.77.0.1 10.77.0.2
  else
    lagrows+=("| 20 ms one-way (netem) | skipped: this kernel has no netem qdisc (sch_netem) | | |")
  fi
else
  lagrows+=("| 20 ms one-way (netem) | skipped: needs root and ip netns | | |")
fi

# ------------------------------------------------ 3. promote to first write
promotes=()
for i in 1 2 3; do
  start_pair async
  kill -9 "$A_PID"; wait "$A_PID" 2>/dev/null || true
  ms=$($PY - "$B_URL" "$TOK" <<'EOF'
import json, sys, time, urllib.request
url, tok = sys.argv[1], sys.argv[2]
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else b"",
                                 headers={"Authorization": "Bearer " + tok, "Content-Type": "application/scim+json"})
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
t0 = time.monotonic()
assert post("/admin/v1/node/promote", None) == 200
n = 0
while post("/scim2/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "first%d" % n}) != 201:
    n += 1
print("%.1f" % ((time.monotonic() - t0) * 1000))
EOF
)
  promotes+=("$ms")
  kill -9 "$B_PID" 2>/dev/null || true; wait "$B_PID" 2>/dev/null || true
done
promote=$(printf '%s\n' "${promotes[@]}" | sort -n | sed -n 2p)

# ------------------------------------------- 5. PostgreSQL 15, same run
pg=""
if [ "$(id -u)" = 0 ] && [ -x "$ROOT/bench/peers/postgres-repl.sh" ]; then
  pg=$(BENCH_SECONDS=$SECS timeout 300 "$ROOT/bench/peers/postgres-repl.sh" 2>/dev/null | grep PG_RESULT || true)
fi
pgf() { echo "$pg" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }

# ------------------------------------------------- 4. capture alone (unit)
cap="n/a (build test_repl_capture)"
if [ -x "$BUILD/test_repl_capture" ]; then
  cap=$(REFUGE_TEST_TMP=$dir "$BUILD/test_repl_capture" 2>/dev/null | sed -n 's/^capture cost: //p')
fi

{
  echo "### Replication (bench/repl.sh, wrk -t2 -c8 -d${SECS}s, POST /scim2/Users)"
  echo
  echo "| mode | writes/s | p50 | p99 | errors | notes |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Lag (commit → standby ACK, active's clock; histogram bucket bounds), async, 8 connections paced by ${DELAY_MS} ms:"
  echo
  echo "| link | offered writes/s | lag p50 | lag p99 |"
  echo "|---|---|---|---|"
  printf '%s\n' "${lagrows[@]}"
  echo
  echo "- Promote to first write (POST promote → first 201, median of 3): ${promote} ms"
  echo "- Capture alone, same store, same run (tests/unit/test_repl_capture): ${cap}"
  echo
  if [ -n "$pg" ]; then
    echo "PostgreSQL 15 streaming replication, same machine, same run (bench/peers/postgres-repl.sh: pgbench -c8, one-row"
    echo "INSERTs over SQL, no HTTP; so compare ratios, not absolute rates):"
    echo
    echo "| figure | PostgreSQL 15 | Refuge |"
    echo "|---|---|---|"
    echo "| async tx/s | $(echo "$pg" | sed -n 's/.*mode=async tps=\([0-9]*\).*/\1/p') | $(printf '%s\n' "${rows[@]}" | awk -F'|' '$2 ~ /^ async/ {print $3}') (HTTP SCIM creates) |"
    echo "| remote_apply tx/s | $(echo "$pg" | sed -n 's/.*mode=remote_apply tps=\([0-9]*\).*/\1/p') | $(printf '%s\n' "${rows[@]}" | awk -F'|' '$2 ~ /^ remote_apply/ {print $3}') |"
    echo "| replay lag p50 / p99 at a fixed rate | $(pgf lag_p50_ms) / $(pgf lag_p99_ms) ms at $(pgf rate)/s (sampled replay_lag) | see the lag table |"
    echo "| promote to first write | $(pgf promote_first_write_ms) ms | ${promote} ms |"
  else
    echo "PostgreSQL reference: not run (needs root and PostgreSQL 15; bench/peers/postgres-repl.sh)."
  fi
} | tee "$OUT/repl.md"

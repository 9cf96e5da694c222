#!/usr/bin/env bash
# bench/repl-lag.sh — replication lag against offered load (issue 5's "lag
# p99 ≤ 10 ms at 5,000 tx/s", issue 11's plot). bench/repl.sh measures lag
# at one paced load; this sweeps it:
#   1. One async pair on loopback (a active, b standby, plaintext
#      replication, as in bench/repl.sh). POST /scim2/Users without a
#      password (one users row + one user_emails row, one write job per
#      request) offered at a fixed rate: wrk -t2 -c32, each wrk thread keeps
#      its own schedule of send times (LuaJIT clock_gettime, wrk's delay()),
#      so the offered rate holds whatever the latency, up to what the node
#      can take; then the same load unpaced (the node's ceiling). Rates:
#      BENCH_LAG_RATES (default 1000 2500 5000 7500 10000), BENCH_SECONDS
#      each (default 4). After each step the standby must catch up (same lsn).
#   2. Lag per step: commit -> standby ACK of the newest acknowledged record,
#      from a's histogram refuge_repl_ack_latency_seconds (the difference
#      over the step): p50 and p99 interpolated linearly inside the buckets
#      (as Prometheus' histogram_quantile does), and the bucket bound.
#   3. Rewind of 10,000 divergent transactions (issue 5's ≤ 1 s): the Release
#      build of tests/unit/test_repl_apply (test_rewind_10k) prints the time
#      to export them to DATA_DIR/divergent and to rewind them.
# Writes bench/out/repl-lag.md and bench/out/repl-lag.dat (offered, achieved,
# p50 ms, p99 ms, request p99 ms) for bench/plot/repl-lag.gp. About 50 s.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-4}
RATES=${BENCH_LAG_RATES:-"1000 2500 5000 7500 10000"}
CONNS=32
PY=/usr/bin/python3
dir=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "repl-lag.sh: $*" >&2; exit 1; }
[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v wrk >/dev/null || die "wrk not found"

pair_conf() { # NAME ROLE HTTP_PORT REPL_LISTEN_PORT PEER_PORT DIR
  mkdir -p "$6"
  {
    printf '[node]\nname = %s\nregion = region-%s\ndata_dir = %s\ninitial_role = %s\nmaster_key_file = %s/master.key\n' \
      "$1" "$1" "$6" "$2" "$dir"
    printf '[http]\nlisten = 127.0.0.1:%s\nthreads = %s\npublic_url = https://idp.bench\n' "$3" "${HTTP_THREADS:-2}"
    printf '[log]\nlevel = warn\nfile = %s/refuged.log\n' "$6"
    printf '[replication]\nlisten = 127.0.0.1:%s\npeer = 127.0.0.1:%s\nmode = async\nmax_lag_ms = 10s\ninsecure_plaintext = true\n' \
      "$4" "$5"
  } > "$6/refuge.conf"
}
wait_live() {
  for _ in $(seq 1 500); do curl -fs "$1/health/live" >/dev/null 2>&1 && return 0; sleep 0.02; done
  die "node at $1 did not start"
}
repl_lsn() { curl -fsS -H "Authorization: Bearer $TOK" "$1/admin/v1/node/replication" | bench_json lsn; }
wait_caught_up() {
  local la lb
  for _ in $(seq 1 600); do
    la=$(repl_lsn "$A_URL"); lb=$(repl_lsn "$B_URL")
    [ "$la" = "$lb" ] && { echo "$la"; return 0; }
    sleep 0.05
  done
  die "standby did not catch up ($la vs $lb)"
}
hist() {
  curl -fs "$A_URL/metrics" | sed -n 's/^refuge_repl_ack_latency_seconds_bucket{le="\([^"]*\)"} \(.*\)$/\1 \2/p'
}
# quant BEFORE AFTER -> "p50_ms p99_ms p50_bucket p99_bucket count"
quant() {
  $PY - "$1" "$2" <<'EOF'
import math, sys
def parse(s):
    return [(math.inf if le == "+Inf" else float(le), float(c)) for le, c in (l.split() for l in s.strip().splitlines())]
b, a = parse(sys.argv[1]), parse(sys.argv[2])
d = [(le, ca - cb) for (le, ca), (_, cb) in zip(a, b)]
total = d[-1][1]
out = []
if total <= 0:
    print("nan nan n/a n/a 0"); sys.exit()
for p in (50, 99):
    rank, lo, prev = p / 100 * total, 0.0, 0.0
    for le, c in d:
        if c >= rank:
            if math.isinf(le):
                out.append((lo * 1000, ">%gms" % (lo * 1000)))
            else:
                frac = (rank - prev) / (c - prev) if c > prev else 1
                out.append(((lo + (le - lo) * frac) * 1000, "<=%gms" % (le * 1000)))
            break
        lo, prev = le, c
print("%.2f %.2f %s %s %d" % (out[0][0], out[1][0], out[0][1], out[1][1], total))
EOF
}

# ------------------------------------------------------------------ the pair
pa=$(free_port); pb=$(free_port); ra=$(free_port); rb=$(free_port)
A_DIR=$dir/a; B_DIR=$dir/b
pair_conf a active "$pa" "$ra" "$rb" "$A_DIR"
pair_conf b standby "$pb" "$rb" "$ra" "$B_DIR"
A_URL=http://127.0.0.1:$pa; B_URL=http://127.0.0.1:$pb
"$REFUGED" -c "$A_DIR/refuge.conf" & PIDS+=($!); wait_live "$A_URL"
"$REFUGED" -c "$B_DIR/refuge.conf" & PIDS+=($!); wait_live "$B_URL"
TOK=$(admin_token "$A_URL" "$A_DIR" "refuge:admin scim:write") || die "no admin token"
wait_caught_up >/dev/null

cat > "$dir/paced.lua" <<'EOF'
-- POST /scim2/Users at LAG_RATE requests/s in all (0: unpaced), split evenly
-- between wrk's threads; each thread keeps an absolute schedule of send slots.
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } lag_ts; int clock_gettime(int, lag_ts *); ]]
local ts = ffi.new("lag_ts")
local function now_ms() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6 end
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
counter = 0
local rate = tonumber(os.getenv("LAG_RATE") or "0")
local period = rate > 0 and 2000 / rate or 0     -- ms between this thread's sends (wrk -t2)
local slot = nil
local hdrs = { ["Authorization"] = "Bearer " .. os.getenv("LAG_TOKEN"), ["Content-Type"] = "application/scim+json" }
request = function()
  local name = string.format("%s-%d-%d", os.getenv("LAG_PREFIX"), tid, counter)
  counter = counter + 1
  return wrk.format("POST", "/scim2/Users", hdrs,
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","emails":[{"value":"' .. name .. '@bench.example","primary":true}]}')
end
if period > 0 then
  delay = function()
    local now = now_ms()
    if slot == nil or slot < now - 50 then slot = now end   -- fell behind: no catch-up burst
    slot = slot + period
    local d = slot - now
    return d > 0 and d or 0
  end
end
EOF
step() { # RATE -> "offered achieved p50 p99 p50b p99b n req_p99_ms errors"
  local h0 h1 r q
  h0=$(hist)
  r=$(LAG_RATE=$1 LAG_TOKEN=$TOK LAG_PREFIX=r$1 wrk_run "$A_URL/scim2/Users" "$dir/paced.lua" "$CONNS" "$SECS")
  h1=$(hist)
  wait_caught_up >/dev/null
  q=$(quant "$h0" "$h1")
  echo "$1 $(echo "$r" | field rps) $q $(awk -v u="$(echo "$r" | field p99_us)" 'BEGIN { printf "%.2f", u / 1000 }') $(echo "$r" | field errors)"
}
LAG_RATE=1000 LAG_TOKEN=$TOK LAG_PREFIX=warm wrk_run "$A_URL/scim2/Users" "$dir/paced.lua" "$CONNS" 1 >/dev/null
wait_caught_up >/dev/null
: > "$dir/steps"
for rate in $RATES 0; do
  s=$(step "$rate")
  echo "repl-lag.sh: $s" >&2
  echo "$s" >> "$dir/steps"
done
lsn=$(wait_caught_up)

# ------------------------------------------------------- rewind 10k (unit)
rewind="n/a (build test_repl_apply)"; rewind_ms=
if [ -x "$BUILD/test_repl_apply" ]; then
  mkdir -p "$dir/unit"
  line=$(REFUGE_TEST_TMP=$dir/unit "$BUILD/test_repl_apply" 2>/dev/null | grep '^rewind of 10000' || true)
  if [ -n "$line" ]; then
    ex=$(echo "$line" | sed -n 's/.*export \([0-9.]*\) ms.*/\1/p'); rw=$(echo "$line" | sed -n 's/.*rewind \([0-9.]*\) ms$/\1/p')
    rewind_ms=$(awk -v a="$ex" -v b="$rw" 'BEGIN { print a + b }')
    rewind="export ${ex} ms + rewind ${rw} ms = **${rewind_ms} ms**"
  fi
fi

# ------------------------------------------------------------------- report
{
  echo "# offered achieved lag_p50_ms lag_p99_ms req_p99_ms"
  awk '{ print $1, $2, $3, $4, $8 }' "$dir/steps"
} > "$OUT/repl-lag.dat"
{
  echo "### Replication lag against offered load (bench/repl-lag.sh, async, loopback, wrk -t2 -c$CONNS, ${SECS} s per step)"
  echo
  echo "| offered writes/s | achieved | lag p50 | lag p99 | (buckets p50 / p99) | write p99 | errors |"
  echo "|---|---|---|---|---|---|---|"
  awk '{ printf "| %s | %s | %s ms | %s ms | %s / %s | %s ms | %s |\n", ($1 == 0 ? "unpaced" : $1), $2, $3, $4, $5, $6, $8, $9 }' "$dir/steps"
  echo
  echo "- Lag: commit → standby ACK of the newest acknowledged record (active's clock, refuge_repl_ack_latency_seconds)," \
       "interpolated inside the histogram buckets; the standby caught up after every step (final lsn $lsn)."
  echo "- Writes are POST /scim2/Users without a password, paced per wrk thread; wrk, both nodes and the standby's apply share the 2 cores."
  echo "- Rewind of 10,000 divergent transactions (tests/unit/test_repl_apply, Release): ${rewind}"
  echo
  echo "![replication lag against offered load](img/repl-lag.svg)"
} | tee "$OUT/repl-lag.md"
awk -v r="$rewind_ms" '$1 == 5000 { printf "lag_at_5000_p99_ms=%s lag_at_5000_achieved=%s ", $4, $2 }
  $1 == 0 { printf "unpaced_rps=%s ", $2 } END { printf "rewind_10k_ms=%s\n", r }' "$dir/steps" > "$OUT/repl-lag.kv"

#!/usr/bin/env bash
# bench/startup.sh — how fast refuged starts and how small it stays (issue 11):
#   1. exec -> first 200 on GET /health/ready, median of 5, on an empty data
#      dir (every start is a first start: schema, bootstrap tenant, keys,
#      admin client and its secret) and on a store holding 100,000 users.
#      The clock is a Python probe that starts refuged itself (fork + exec)
#      and polls the port with a raw HTTP/1.1 request every 0.5 ms, so no
#      curl start-up sits inside the figure.
#   2. Idle RSS 1 s after ready (VmRSS) on both stores, median of the 5 starts.
#   3. Idle RSS after load, on the 100,000-user store: client_credentials JWT
#      (c64), SCIM filtered lookups (c8), SCIM creates without (c64) and with
#      a password (c16, argon2id m=19 MiB on 2 threads), BENCH_SECONDS each;
#      then 2 s of quiet, VmRSS and VmHWM (the peak).
# The 100,000-user store: the node bootstraps an empty data dir and creates
# one user through POST /scim2/Users; that row (users + user_emails, as
# src/identity/user.c writes them) is the template for 99,999 more inserted
# with Python's sqlite3 in one transaction while the node is stopped (about
# 3 s instead of minutes over HTTP; bench/scim.sh is the HTTP figure). Those
# rows have no replication-log records, as in any store older than the log's
# retention window (15 minutes by default).
# Uses $REFUGE_BUILD (default build-release). Writes bench/out/startup.md.
# Takes about 60 s.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-4}
USERS=${BENCH_STARTUP_USERS:-100000}
RUNS=5
PY=/usr/bin/python3
dir=$(mktemp -d)
cleanup() {
  if [ -n "${NODE_PID:-}" ]; then stop_node "$NODE_PID"; fi
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "startup.sh: $*" >&2; exit 1; }
[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v wrk >/dev/null || die "wrk not found (scripts/install-deps)"

# probe CONF PORT -> "ms=<exec to 200> rss_kib=<VmRSS 1 s later> threads=<n>"
cat > "$dir/probe.py" <<'EOF'
import os, signal, socket, subprocess, sys, time
refuged, conf, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
req = b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
def ready():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(req)
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
t0 = time.monotonic()
p = subprocess.Popen([refuged, "-c", conf], stdin=subprocess.DEVNULL)
while not ready():
    if p.poll() is not None:
        sys.exit("refuged exited with %d before it was ready" % p.returncode)
    if time.monotonic() - t0 > 20:
        p.kill(); sys.exit("refuged not ready after 20 s")
    time.sleep(0.0005)
ms = (time.monotonic() - t0) * 1000
time.sleep(1)
st = dict(l.split(":", 1) for l in open("/proc/%d/status" % p.pid))
rss, thr = int(st["VmRSS"].split()[0]), int(st["Threads"])
p.send_signal(signal.SIGTERM)
rc = p.wait(timeout=20)
if rc != 0:
    sys.exit("refuged exited %d on SIGTERM" % rc)
print("ms=%.1f rss_kib=%d threads=%d" % (ms, rss, thr))
EOF
probe() { $PY "$dir/probe.py" "$REFUGED" "$1" "$2"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ------------------------------------------------------ 1. empty data dirs
empty_ms=(); empty_rss=()
for i in $(seq 1 $RUNS); do
  p=$(free_port)
  node_conf bench "$dir/empty$i" "$p"
  r=$(probe "$dir/empty$i/refuge.conf" "$p") || die "start on an empty data dir failed"
  empty_ms+=("$(echo "$r" | sed 's/.*ms=\([^ ]*\).*/\1/')")
  empty_rss+=("$(echo "$r" | field rss_kib)")
  threads=$(echo "$r" | field threads)
  rm -rf "$dir/empty$i"
done

# ------------------------------------------------ 2. the 100,000-user store
port=$(free_port)
base=http://127.0.0.1:$port
start_node bench "$dir/big" "$port"
tok=$(admin_token "$base" "$dir/big" "refuge:admin scim:write") || die "no admin token"
curl -fsS -o /dev/null -H "Authorization: Bearer $tok" -H 'Content-Type: application/scim+json' \
  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bulk-0","name":{"givenName":"Bench","familyName":"User 0"},"emails":[{"value":"bulk-0@bench.example","type":"work","primary":true}]}' \
  "$base/scim2/Users" || die "template user not created"
stop_node "$NODE_PID"; NODE_PID=
t0=$(date +%s%N)
$PY - "$dir/big/refuge.db" "$USERS" <<'EOF' || die "bulk insert failed"
import json, sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1], timeout=10)
n = int(sys.argv[2])
cols = [r[1] for r in db.execute("PRAGMA table_info(users)")]
tmpl = dict(zip(cols, db.execute("SELECT * FROM users WHERE user_name = 'bulk-0'").fetchone()))
ecols = [r[1] for r in db.execute("PRAGMA table_info(user_emails)")]
etmpl = dict(zip(ecols, db.execute("SELECT * FROM user_emails WHERE user_id = ?", (tmpl["id"],)).fetchone()))
data0 = json.loads(tmpl["data"])
def rows():
    for i in range(1, n):
        name, uid = "bulk-%d" % i, str(uuid.uuid4())
        d = dict(data0)
        d["userName"], d["id"] = name, uid
        d["name"] = dict(data0["name"], familyName="User %d" % i)
        d["emails"] = [dict(data0["emails"][0], value=name + "@bench.example")]
        r = dict(tmpl, id=uid, user_name=name, user_name_lc=name, data=json.dumps(d, separators=(",", ":")))
        yield r
def erows(users):
    for r in users:
        yield dict(etmpl, user_id=r["id"], value_lc=r["user_name_lc"] + "@bench.example")
batch = list(rows())
with db:
    db.executemany("INSERT INTO users (%s) VALUES (%s)" % (",".join(cols), ",".join(":" + c for c in cols)), batch)
    db.executemany("INSERT INTO user_emails (%s) VALUES (%s)" % (",".join(ecols), ",".join(":" + c for c in ecols)),
                   erows(batch))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
EOF
bulk_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
db_mib=$(du -m "$dir/big/refuge.db" | cut -f1)

big_ms=(); big_rss=()
for i in $(seq 1 $RUNS); do
  p=$(free_port)
  sed -i "s/^listen = .*/listen = 127.0.0.1:$p/" "$dir/big/refuge.conf"
  r=$(probe "$dir/big/refuge.conf" "$p") || die "start on the $USERS-user store failed"
  big_ms+=("$(echo "$r" | sed 's/.*ms=\([^ ]*\).*/\1/')")
  big_rss+=("$(echo "$r" | field rss_kib)")
done

# ---------------------------------------------- 3. RSS after a mixed load
port=$(free_port)
base=http://127.0.0.1:$port
sed -i "s/^listen = .*/listen = 127.0.0.1:$port/" "$dir/big/refuge.conf"
"$REFUGED" -c "$dir/big/refuge.conf" &
NODE_PID=$!
wait_ready "$port"
tok=$(admin_token "$base" "$dir/big" "refuge:admin scim:read scim:write") || die "no admin token"
users=$(curl -fsS -H "Authorization: Bearer $tok" "$base/scim2/Users?count=0" | bench_json totalResults)
[ "$users" -ge "$USERS" ] || die "the node sees $users users, expected $USERS"
found=$(curl -fsS -H "Authorization: Bearer $tok" \
  "$base/scim2/Users?filter=userName%20eq%20%22bulk-$((USERS / 2))%22" | bench_json totalResults)
[ "$found" = 1 ] || die "bulk user bulk-$((USERS / 2)) not found through SCIM"
secret=$(bench_client "$base" "$tok" bench-jwt jwt) || die "cannot create the JWT client"
export TOKEN_BASIC TOKEN_SCOPE=api:read
TOKEN_BASIC=$(printf '%s' "bench-jwt:$secret" | base64 -w0)
cat > "$dir/lookup.lua" <<'EOF'
local hdrs = { ["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN") }
local n = tonumber(os.getenv("SCIM_USERS"))
request = function()
  return wrk.format("GET", "/scim2/Users?filter=userName%20eq%20%22bulk-" .. math.random(0, n - 1) .. "%22", hdrs)
end
EOF
cat > "$dir/create.lua" <<'EOF'
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
counter = 0
local pw = os.getenv("SCIM_PASSWORD")
local hdrs = { ["Authorization"] = "Bearer " .. os.getenv("SCIM_TOKEN"), ["Content-Type"] = "application/scim+json" }
request = function()
  local name = string.format("%s-%d-%d", os.getenv("SCIM_PREFIX"), tid, counter)
  counter = counter + 1
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","emails":[{"value":"' .. name .. '@bench.example","primary":true}]'
  if pw and pw ~= "" then body = body .. ',"password":"' .. pw .. '"' end
  return wrk.format("POST", "/scim2/Users", hdrs, body .. "}")
end
EOF
export SCIM_TOKEN=$tok SCIM_USERS=$USERS
loads=()
loads+=("JWT $(wrk_run "$base/oauth2/token" "$ROOT/bench/wrk/token_cc.lua" 64 "$SECS" | field rps)")
loads+=("lookup $(wrk_run "$base/scim2/Users" "$dir/lookup.lua" 8 "$SECS" | field rps)")
loads+=("create $(SCIM_PREFIX=c SCIM_PASSWORD= wrk_run "$base/scim2/Users" "$dir/create.lua" 64 "$SECS" | field rps)")
loads+=("password $(SCIM_PREFIX=p SCIM_PASSWORD='Bench-Passw0rd!' wrk_run "$base/scim2/Users" "$dir/create.lua" 16 "$SECS" | field rps)")
sleep 2
load_rss=$(rss_kib "$NODE_PID"); load_hwm=$(hwm_kib "$NODE_PID")
stop_node "$NODE_PID"; NODE_PID=

# ------------------------------------------------------------------- report
em=$(printf '%s\n' "${empty_ms[@]}" | median); bm=$(printf '%s\n' "${big_ms[@]}" | median)
er=$(printf '%s\n' "${empty_rss[@]}" | median); br=$(printf '%s\n' "${big_rss[@]}" | median)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g) ? "met" : "missed" }'; }
{
  echo "### Startup and memory (bench/startup.sh, median of $RUNS starts each)"
  echo
  echo "| store | exec → first 200 on /health/ready | all $RUNS runs (ms) | idle RSS 1 s after ready | goal |"
  echo "|---|---|---|---|---|"
  echo "| empty data dir (first start: schema, bootstrap) | **${em} ms** | ${empty_ms[*]} | **$(mib "$er") MiB** | ≤ 100 ms: $(verdict "$em" 100); ≤ 32 MiB: $(verdict "$er" 32768) |"
  echo "| ${users} users, ${db_mib} MiB refuge.db | **${bm} ms** | ${big_ms[*]} | **$(mib "$br") MiB** | ≤ 100 ms: $(verdict "$bm" 100); ≤ 32 MiB: $(verdict "$br" 32768) |"
  echo
  echo "- After a mixed load on the ${users}-user store (${SECS} s each, req/s: ${loads[*]}) and 2 s of quiet:" \
       "RSS **$(mib "$load_rss") MiB**, peak (VmHWM) $(mib "$load_hwm") MiB; goal ≤ 32 MiB idle: $(verdict "$load_rss" 32768)"
  echo "- refuged runs ${threads} threads at idle (2 HTTP workers). For scale: Keycloak's sizing guide starts at 1,250 MB per pod."
  echo "- The ${USERS}-user store was filled in ${bulk_s} s by a bulk SQL insert shaped on a user created through SCIM" \
       "(no replication-log records for those rows, as after the log's retention window)."
} | tee "$OUT/startup.md"
# machine-readable, for bench/goals.py
printf 'startup_empty_ms=%s startup_100k_ms=%s rss_empty_kib=%s rss_100k_kib=%s rss_load_kib=%s hwm_load_kib=%s\n' \
  "$em" "$bm" "$er" "$br" "$load_rss" "$load_hwm" > "$OUT/startup.kv"

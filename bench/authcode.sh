#!/usr/bin/env bash
# bench/authcode.sh — authorization-code round trips per second on the SSO
# path: a browser that is already signed in (session cookie), so no password
# is hashed. One round trip is
#   GET /oauth2/authorize (cookie, PKCE S256)  -> 302 ?code=     (one write: the code row)
#   POST /oauth2/token (code + code_verifier)  -> 200 AT + ID token (two ES256
#      signatures, one write: the code marked used)
# for a public client with grant_types [authorization_code], scope openid.
# The driver is bench/authcode.mjs (Node, built-in http, keep-alive): it signs
# in once through the login page, then runs CONNS concurrent loops. Fixed
# parameters so runs compare: 32 loops, 10 s measured after a 2 s warm-up.
# Builds nothing: uses $REFUGE_BUILD (default build-release, `make bench`).
# Writes bench/out/authcode.md. Takes about 20 s.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-32}
WARMUP=2
PY=/usr/bin/python3
dir=$(mktemp -d)
cleanup() {
  if [ -n "${NODE_PID:-}" ]; then stop_node "$NODE_PID"; fi
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "authcode.sh: $*" >&2; exit 1; }
json() { $PY -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v node >/dev/null || die "node not found (scripts/install-deps)"

port=$(free_port)
base=http://127.0.0.1:$port
start_node bench "$dir/n" "$port"
admin_id=$(json client_id < "$dir/n/bootstrap-admin.json")
admin_secret=$(json client_secret < "$dir/n/bootstrap-admin.json")
admin_tok=$(curl -fsS -u "$admin_id:$admin_secret" -d grant_type=client_credentials \
  -d scope=refuge:admin "$base/oauth2/token" | json access_token)

redirect=https://rp.bench.example/cb
curl -fsS -H "Authorization: Bearer $admin_tok" -H 'Content-Type: application/json' \
  -d "{\"client_id\":\"bench-web\",\"name\":\"Bench web app\",\"type\":\"public\",\"redirect_uris\":[\"$redirect\"],\"grant_types\":[\"authorization_code\"],\"scopes\":[\"openid\",\"profile\"],\"default_scopes\":[\"openid\"]}" \
  "$base/admin/v1/clients" > /dev/null || die "cannot create the client"

# The user: through SCIM when the node has it, else a row with a hash made
# by the node's own `refuged --hash-password`.
$PY - "$base" "$admin_tok" "$dir/n/refuge.db" "$REFUGED" <<'EOF' || die "cannot create the bench user"
import json, sqlite3, subprocess, sys, time, uuid
import requests
base, tok, dbpath, refuged = sys.argv[1:5]
user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bench-user",
        "password": "Bench-Passw0rd!"}
r = requests.post(base + "/scim2/Users", json=user, headers={"Authorization": "Bearer " + tok,
                  "Content-Type": "application/scim+json"}, timeout=10)
if r.status_code == 201:
    sys.exit(0)
h = subprocess.run([refuged, "--hash-password"], input=user["password"], capture_output=True, text=True,
                   check=True).stdout.strip()
uid, now = str(uuid.uuid4()), int(time.time())
data = {k: v for k, v in user.items() if k != "password"}
data["id"] = uid
db = sqlite3.connect(dbpath, timeout=10)
with db:
    db.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data, created_at,"
               " updated_at) VALUES ('default', ?, 'bench-user', 'bench-user', 1, ?, ?, ?, ?)",
               (uid, h, json.dumps(data), now, now))
db.close()
EOF

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NODE_PID/stat"; }   # utime + stime
b0=$(metric "$port" refuge_store_commit_batch_size_count); s0=$(metric "$port" refuge_store_commit_batch_size_sum)
c0=$(cpu_ticks)
res=$(BASE=$base CLIENT_ID=bench-web REDIRECT_URI=$redirect USERNAME=bench-user PASSWORD=Bench-Passw0rd! \
  CONNS=$CONNS SECS=$SECS WARMUP=$WARMUP node "$ROOT/bench/authcode.mjs" | grep AUTHCODE_RESULT) \
  || die "the driver failed"
c1=$(cpu_ticks)
cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$(echo "$res" | field all)" \
  'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "n/a" }')
b1=$(metric "$port" refuge_store_commit_batch_size_count); s1=$(metric "$port" refuge_store_commit_batch_size_sum)
batch=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) 'BEGIN { if (b > 0) printf "%.1f", s / b; else print "n/a" }')
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$NODE_PID/status")
stop_node "$NODE_PID"; NODE_PID=

rt=$(echo "$res" | field rt_s)
{
  echo "### Authorization code on the SSO path (bench/authcode.sh, $CONNS loops, ${SECS} s after a ${WARMUP} s warm-up)"
  echo
  echo "| load | round trips/s | HTTP req/s | p50 | p99 | errors | notes |"
  echo "|---|---|---|---|---|---|---|"
  echo "| signed-in browser: GET /oauth2/authorize → 302 code, POST /oauth2/token (PKCE S256) → AT + ID token | $rt | $(awk -v r="$rt" 'BEGIN { printf "%.0f", 2 * r }') | $(echo "$res" | field p50_ms) ms | $(echo "$res" | field p99_ms) ms | $(echo "$res" | field errors) | 2 writes and 2 ES256 signatures per round trip; mean group-commit batch $batch jobs |"
  echo
  echo "- refuged CPU per round trip: ${cpu_us} µs (user + system, warm-up included), i.e. about $(awk -v u="$cpu_us" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "n/a" }') round trips per CPU-second of refuged."
  echo "- Latency is per round trip (both requests). The driver (Node $(node --version), keep-alive) runs on the same 2 cores as refuged and takes a good share of them."
  echo "- refuged: 2 HTTP threads, RSS after the run $((rss_kib / 1024)) MiB."
} | tee "$OUT/authcode.md"

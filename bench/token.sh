#!/usr/bin/env bash
# bench/token.sh — the token endpoint under load, and a peer for scale.
#   1. client_credentials, JWT access tokens signed ES256 (no store write)
#   2. client_credentials, opaque access tokens (one row per token, group-committed)
#   3. refresh_token grant with rotation (a read, then one write: old row
#      rotated, new row inserted); every refresh token is used once
#      (bench/wrk/token_refresh.lua)
#   4. the same client_credentials load as 1. against npm oidc-provider
#      (bench/peers/oidc-provider, ES256 JWT access tokens), with 2 cluster
#      workers (one per core, as refuged runs 2 HTTP threads) and as a single
#      process; started after refuged has stopped so the two never share the CPU
#   5. `openssl speed ecdsap256`: ES256 signatures per second on this machine,
#      on one core and on all cores — the ceiling for 1. and 4.
# Parameters are fixed so runs compare: wrk -t2, 64 connections, 10 s per
# measured run, after a 2 s warm-up of each server. Builds nothing: uses
# $REFUGE_BUILD (default build-release, made by `make bench`). Writes the
# table to bench/out/token.md. Takes about 80 s.
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-64}
WARMUP=2
PEER_DIR=$ROOT/bench/peers/oidc-provider
PY=/usr/bin/python3
dir=$(mktemp -d)
PEER_PID=
cleanup() {
  # never `kill 0`: with an empty pid that would signal our whole process group
  if [ -n "${NODE_PID:-}" ]; then stop_node "$NODE_PID"; fi
  if [ -n "$PEER_PID" ]; then kill -TERM "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

die() { echo "token.sh: $*" >&2; exit 1; }
json() { $PY -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
b64() { printf '%s' "$1" | base64 -w0; }

# The JWT header's alg and typ, "ES256 at+jwt"; "opaque" for a non-JWT.
token_kind() {
  $PY -c 'import base64,json,sys
t=sys.argv[1]
if t.count(".")!=2: print("opaque", len(t)); sys.exit()
h=json.loads(base64.urlsafe_b64decode(t.split(".")[0]+"=="))
print(h.get("alg"), h.get("typ"))' "$1"
}

[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
command -v wrk >/dev/null || die "wrk not found (scripts/install-deps)"

# ------------------------------------------------------------------ refuged
port=$(free_port)
base=http://127.0.0.1:$port
start_node bench "$dir/n" "$port"
admin_id=$(json client_id < "$dir/n/bootstrap-admin.json")
admin_secret=$(json client_secret < "$dir/n/bootstrap-admin.json")
admin_tok=$(curl -fsS -u "$admin_id:$admin_secret" -d grant_type=client_credentials \
  -d scope=refuge:admin "$base/oauth2/token" | json access_token)

mkclient() { # mkclient ID JSON-FIELDS -> client secret
  curl -fsS -H "Authorization: Bearer $admin_tok" -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$1\",\"name\":\"$1\",\"type\":\"confidential\",\"scopes\":[\"api:read\",\"api:write\"],\"default_scopes\":[\"api:read\"],$2}" \
    "$base/admin/v1/clients" | json client_secret
}
jwt_secret=$(mkclient bench-jwt '"grant_types":["client_credentials"],"token_format":"jwt"')
opq_secret=$(mkclient bench-opaque '"grant_types":["client_credentials"],"token_format":"opaque"')
rt_secret=$(mkclient bench-refresh '"grant_types":["password","refresh_token"],"token_format":"jwt"')

# A user for the password grants that seed the refresh-token pool: through
# SCIM when the node has it, else a row in refuge.db with an argon2id hash
# made by libsodium (the format crypto/password.c writes).
$PY - "$base" "$admin_tok" "$dir/n/refuge.db" <<'EOF' || die "cannot create the bench user"
import ctypes, ctypes.util, json, sqlite3, sys, time, uuid
import requests
base, tok, dbpath = sys.argv[1:4]
user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bench-user",
        "password": "Bench-Passw0rd!"}
r = requests.post(base + "/scim2/Users", json=user, headers={"Authorization": "Bearer " + tok,
                  "Content-Type": "application/scim+json"}, timeout=10)
if r.status_code == 201:
    sys.exit(0)
lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert lib.sodium_init() >= 0
lib.crypto_pwhash_str.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_ulonglong, ctypes.c_size_t]
out = ctypes.create_string_buffer(128)
pw = user["password"].encode()
assert lib.crypto_pwhash_str(out, pw, len(pw), 2, 19456 * 1024) == 0
uid, now = str(uuid.uuid4()), int(time.time())
data = {k: v for k, v in user.items() if k != "password"}
data["id"] = uid
db = sqlite3.connect(dbpath, timeout=10)
with db:
    db.execute("INSERT INTO users (tenant, id, user_name, user_name_lc, active, password_hash, data, created_at,"
               " updated_at) VALUES ('default', ?, 'bench-user', 'bench-user', 1, ?, ?, ?, ?)",
               (uid, out.value.decode(), json.dumps(data), now, now))
db.close()
EOF

# One refresh token per connection, and a few spare: password grants, 4 at a time.
rt_file=$dir/refresh_tokens
seq 1 $((CONNS + 8)) | xargs -P4 -I{} curl -fsS -u "bench-refresh:$rt_secret" -d grant_type=password \
  -d username=bench-user -d password=Bench-Passw0rd! -d scope=api:read "$base/oauth2/token" -o "$dir/rt.{}" \
  || die "password grants for the refresh-token pool failed"
for f in "$dir"/rt.*; do json refresh_token < "$f"; done > "$rt_file"
[ "$(wc -l < "$rt_file")" -ge "$CONNS" ] || die "could not seed $CONNS refresh tokens"

# What each run issues, checked once before the load.
kind=$(token_kind "$(curl -fsS -u "bench-jwt:$jwt_secret" -d grant_type=client_credentials -d scope=api:read \
  "$base/oauth2/token" | json access_token)")
[ "$kind" = "ES256 at+jwt" ] || die "refuged JWT client issued: $kind"
kind=$(token_kind "$(curl -fsS -u "bench-opaque:$opq_secret" -d grant_type=client_credentials -d scope=api:read \
  "$base/oauth2/token" | json access_token)")
[ "$kind" = "opaque 43" ] || die "refuged opaque client issued: $kind"

export TOKEN_SCOPE=api:read TOKEN_REFRESH_FILE=$rt_file TOKEN_THREADS=2
export TOKEN_BASIC
TOKEN_BASIC=$(b64 "bench-jwt:$jwt_secret")
wrk_run "$base/oauth2/token" "$ROOT/bench/wrk/token_cc.lua" "$CONNS" "$WARMUP" >/dev/null
r_jwt=$(wrk_run "$base/oauth2/token" "$ROOT/bench/wrk/token_cc.lua" "$CONNS" "$SECS")
TOKEN_BASIC=$(b64 "bench-opaque:$opq_secret")
b0=$(metric "$port" refuge_store_commit_batch_size_count); s0=$(metric "$port" refuge_store_commit_batch_size_sum)
r_opq=$(wrk_run "$base/oauth2/token" "$ROOT/bench/wrk/token_cc.lua" "$CONNS" "$SECS")
b1=$(metric "$port" refuge_store_commit_batch_size_count); s1=$(metric "$port" refuge_store_commit_batch_size_sum)
batch_opq=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) 'BEGIN { if (b > 0) printf "%.1f", s / b; else print "n/a" }')
TOKEN_BASIC=$(b64 "bench-refresh:$rt_secret")
b0=$b1; s0=$s1
r_rt=$(wrk_run "$base/oauth2/token" "$ROOT/bench/wrk/token_refresh.lua" "$CONNS" "$SECS")
b1=$(metric "$port" refuge_store_commit_batch_size_count); s1=$(metric "$port" refuge_store_commit_batch_size_sum)
batch_rt=$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) 'BEGIN { if (b > 0) printf "%.1f", s / b; else print "n/a" }')
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$NODE_PID/status")
stop_node "$NODE_PID"; NODE_PID=

# ------------------------------------------------------------ oidc-provider
# npm ci only when node_modules is missing or the lockfile changed.
stamp=$PEER_DIR/node_modules/.refuge-lockfile-sha256
want=$(sha256sum "$PEER_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed in $PEER_DIR"
  echo "$want" > "$stamp"
fi
peer_ver=$(node -p 'require(process.argv[1]).version' "$PEER_DIR/node_modules/oidc-provider/package.json")
# run_peer WORKERS -> PEER_RESULT (WRK_RESULT line of the measured run).
# Runs in this shell, not in $(...), so the EXIT trap knows PEER_PID.
run_peer() {
  local pport pbase kind
  pport=$(free_port)
  PORT=$pport CLIENT_ID=bench-peer CLIENT_SECRET=bench-peer-secret WORKERS=$1 \
    node "$PEER_DIR/server.mjs" > "$dir/peer.log" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 1 300); do grep -q '^listening' "$dir/peer.log" && break; sleep 0.05; done
  grep -q '^listening' "$dir/peer.log" || { cat "$dir/peer.log" >&2; die "oidc-provider did not start"; }
  pbase=http://127.0.0.1:$pport
  kind=$(token_kind "$(curl -fsS -u bench-peer:bench-peer-secret -d grant_type=client_credentials -d scope=api:read \
    "$pbase/token" | json access_token)")
  [ "$kind" = "ES256 at+jwt" ] || die "oidc-provider issued: $kind"
  TOKEN_BASIC=$(b64 bench-peer:bench-peer-secret)
  wrk_run "$pbase/token" "$ROOT/bench/wrk/token_cc.lua" "$CONNS" "$WARMUP" >/dev/null
  PEER_RESULT=$(wrk_run "$pbase/token" "$ROOT/bench/wrk/token_cc.lua" "$CONNS" "$SECS")
  kill -TERM "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=
}
run_peer 2; r_peer=$PEER_RESULT
run_peer 1; r_peer1=$PEER_RESULT

# ------------------------------------------------------------------ openssl
sign_rate() { awk '/nistp256/ { print $(NF-1) }' | tail -1; }
ssl1=$(openssl speed -seconds 3 ecdsap256 2>/dev/null | sign_rate)
ssln=$(openssl speed -multi "$(nproc)" -seconds 3 ecdsap256 2>/dev/null | sign_rate)

# ------------------------------------------------------------------- report
row() { # row LABEL RESULT NOTES
  local res=$2
  printf '| %s | %s | %s µs | %s µs | %s | %s |\n' "$1" "$(echo "$res" | field rps)" \
    "$(echo "$res" | field p50_us)" "$(echo "$res" | field p99_us)" "$(echo "$res" | field errors)" "$3"
}
ratio=$(awk -v a="$(echo "$r_jwt" | field rps)" -v b="$(echo "$r_peer" | field rps)" \
  'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }')
ratio1=$(awk -v a="$(echo "$r_jwt" | field rps)" -v b="$(echo "$r_peer1" | field rps)" \
  'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }')
of_ceiling=$(awk -v a="$(echo "$r_jwt" | field rps)" -v b="$ssln" \
  'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print "n/a" }')
{
  echo "### Token endpoint (bench/token.sh, wrk -t2 -c$CONNS -d${SECS}s, after a ${WARMUP} s warm-up)"
  echo
  echo "| load | req/s | p50 | p99 | errors | notes |"
  echo "|---|---|---|---|---|---|"
  row "refuge: client_credentials, JWT ES256" "$r_jwt" "no store write; ${of_ceiling}% of the openssl ES256 ceiling below"
  row "refuge: client_credentials, opaque" "$r_opq" "one row per token; mean group-commit batch $batch_opq jobs"
  row "refuge: refresh_token (rotation)" "$r_rt" "read + rotate + insert per request; mean batch $batch_rt jobs"
  row "oidc-provider $peer_ver: client_credentials, JWT ES256" "$r_peer" "Node $(node --version), production mode, 2 cluster workers (one per core, like refuged's 2 threads)"
  row "oidc-provider $peer_ver, single process" "$r_peer1" "the same, one Node process (its usual deployment unit)"
  echo
  echo "- refuge / oidc-provider, client_credentials JWT ES256: **${ratio}×** (against 2 workers; ${ratio1}× against one process)"
  echo "- openssl speed ecdsap256 (ES256 sign/s, the ceiling): ${ssl1} on one core, ${ssln} on $(nproc) cores (-multi $(nproc))"
  echo "- refuged: 2 HTTP threads, RSS after the runs $((rss_kib / 1024)) MiB; wrk runs on the same machine"
} | tee "$OUT/token.md"

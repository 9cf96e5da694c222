#!/usr/bin/env bash
# bench/profile.sh — where the CPU goes on the hot paths (issue 11). Each
# profile runs a load for PROFILE_SECONDS (default 6) under
#   perf record -a -F 499 --call-graph dwarf
# (every process on the machine, so wrk's and other processes' share shows)
# and writes a text summary to docs/profiles/NAME.txt:
#   token-cc      POST /oauth2/token client_credentials, JWT ES256, wrk -c64
#   scim-create   POST /scim2/Users without a password, wrk -c64, one node
#   repl-write    the same creates on the active of an async pair on
#                 loopback, wrk -c32; the active and the standby both profiled
# Each summary: the load's req/s; CPU by process (share of all samples on
# both cores); then for refuged: CPU by library, the top symbols by self
# time, and refuged's own functions by inclusive time (callers' share, from
# the DWARF call graphs). Percentages in the refuged sections are of
# refuged's samples. The Release build has no debug info, so functions of
# Debian's libraries without symbols show as addresses; grouping by library
# still tells crypto from kernel from SQLite.
# When perf cannot sample here (no perf, or perf_event_open refused), each
# load is instead run for a fixed request count against refuged under
# valgrind --tool=callgrind and the summary is callgrind_annotate's top list.
# Uses $REFUGE_BUILD (default build-release). Takes about 60 s.
source "$(dirname "$0")/lib.sh"
SECS=${PROFILE_SECONDS:-6}
PROF_OUT=${PROFILE_OUT:-$ROOT/docs/profiles}
ONLY=${PROFILE_ONLY:-"token-cc scim-create repl-write"}
CG_REQUESTS=${PROFILE_CALLGRIND_REQUESTS:-2000}
PY=/usr/bin/python3
dir=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
die() { echo "profile.sh: $*" >&2; exit 1; }
[ -x "$REFUGED" ] || die "$REFUGED not found: build it first (make bench)"
mkdir -p "$PROF_OUT"

TOOL=${PROFILE_TOOL:-perf}     # PROFILE_TOOL=callgrind forces the fallback
if [ "$TOOL" = perf ] && ! command -v perf >/dev/null || ! perf record -o "$dir/probe.data" -F 99 -g -- true >/dev/null 2>&1; then
  command -v valgrind >/dev/null || die "neither perf nor valgrind can profile here"
  TOOL=callgrind
fi
echo "profile.sh: using $TOOL" >&2

# --------------------------------------------------------------- the loads
cat > "$dir/create.lua" <<'EOF'
local threads = {}
function setup(thread) thread:set("tid", #threads); table.insert(threads, thread) end
counter = 0
local hdrs = { ["Authorization"] = "Bearer " .. os.getenv("PROF_TOKEN"), ["Content-Type"] = "application/scim+json" }
request = function()
  local name = string.format("%s-%d-%d", os.getenv("PROF_PREFIX"), tid, counter)
  counter = counter + 1
  return wrk.format("POST", "/scim2/Users", hdrs,
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","name":{"givenName":"Bench","familyName":"User ' .. counter .. '"},' ..
    '"emails":[{"value":"' .. name .. '@bench.example","type":"work","primary":true}]}')
end
EOF

# run_node DIR (conf already written) -> LAST_PID, after /health/live answers
run_node() {
  local wrap=()
  [ "$TOOL" = callgrind ] && wrap=(valgrind --tool=callgrind --callgrind-out-file="$1/callgrind.out" -q)
  "${wrap[@]}" "$REFUGED" -c "$1/refuge.conf" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  local port
  port=$(sed -n 's/^listen = 127.0.0.1:\([0-9]*\)$/\1/p' "$1/refuge.conf" | head -1)
  for _ in $(seq 1 1500); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return 0; sleep 0.02; done
  die "node in $1 did not start"
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# fixed_requests URL KIND N -> req/s (callgrind mode: one keep-alive client)
fixed_requests() {
  $PY - "$1" "$2" "$3" <<'EOF'
import base64, http.client, json, os, sys, time, urllib.parse
url, kind, n = urllib.parse.urlsplit(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
t0 = time.monotonic()
for i in range(n):
    if kind == "token":
        c.request("POST", url.path, "grant_type=client_credentials&scope=api:read",
                  {"Authorization": "Basic " + os.environ["TOKEN_BASIC"], "Content-Type": "application/x-www-form-urlencoded"})
    else:
        name = "%s-%d" % (os.environ["PROF_PREFIX"], i)
        c.request("POST", url.path, json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                  "emails": [{"value": name + "@bench.example", "type": "work", "primary": True}]}),
                  {"Authorization": "Bearer " + os.environ["PROF_TOKEN"], "Content-Type": "application/scim+json"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status
print("%.1f" % (n / (time.monotonic() - t0)))
EOF
}

# report DATA LINES perf-report-args... -> the first LINES lines of the table
# (through a file: `perf report | head` would fail the pipeline on SIGPIPE)
report() {
  local data=$1 lines=$2; shift 2
  perf report -i "$data" --stdio -g none "$@" > "$dir/report.txt" 2>/dev/null || true
  grep -v '^#' "$dir/report.txt" | grep -v '^$' | head -"$lines" || true
}

# by_dso DATA PID -> the process's samples summed by library, kernel
# included (perf's own --sort dso leaves the kernel out under --pid)
by_dso() {
  perf report -i "$1" --pid "$2" --no-children --sort dso,sym --stdio -g none > "$dir/report.txt" 2>/dev/null || true
  grep -v '^#' "$dir/report.txt" | awk 'NF >= 3 { v = $1; sub("%", "", v); s[$2] += v; t += v }
    END { for (k in s) if (t > 0 && s[k] * 100 / t >= 0.5) printf "%8.2f%%  %s\n", s[k] * 100 / t, k }' | sort -rn || true
}

# profile NAME URL LUA CONNS KIND "LABEL:PID ..." TITLE (perf mode)
profile() {
  local name=$1 url=$2 lua=$3 conns=$4 kind=$5 targets=$6 title=$7 res f t label pid
  f=$PROF_OUT/$name.txt
  PROF_PREFIX=${name}-w wrk_run "$url" "$lua" "$conns" 1 >/dev/null     # warm-up
  PROF_PREFIX=${name}-m wrk_run "$url" "$lua" "$conns" "$((SECS + 2))" > "$dir/wrk.out" &
  local wpid=$!
  sleep 1
  perf record -a -F 499 --call-graph dwarf,8192 -o "$dir/$name.data" -- sleep "$SECS" >/dev/null 2>&1 ||
    die "perf record failed"
  wait "$wpid"
  res=$(cat "$dir/wrk.out")
  {
    echo "Profile: $title"
    echo "Generated by bench/profile.sh ($(date -u +%Y-%m-%dT%H:%MZ)), refuged $("$REFUGED" --version | cut -d' ' -f2), Release build."
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $LOAD_BEFORE"
    echo "Load: wrk -t2 -c$conns, $((SECS + 2)) s, recorded for the middle $SECS s: $(echo "$res" | field rps) req/s, p99 $(echo "$res" | field p99_us) µs, errors $(echo "$res" | field errors)"
    echo "Tool: perf record -a -F 499 --call-graph dwarf,8192 (cpu-clock: this VM has no hardware counters)"
    echo
    echo "== CPU by process, % of all samples on both cores (other helpers' processes on a shared machine show here too)"
    report "$dir/$name.data" 15 --no-children --sort comm --percent-limit 0.5
    for t in $targets; do
      label=${t%%:*}; pid=${t#*:}
      echo
      echo "== $label (pid $pid): CPU by thread, % of all samples"
      report "$dir/$name.data" 8 --pid "$pid" --no-children --sort pid --percent-limit 0.2
      echo
      echo "== $label: CPU by library (kernel included), % of its samples"
      by_dso "$dir/$name.data" "$pid"
      echo
      echo "== $label: top 30 symbols by self time, % of its samples"
      report "$dir/$name.data" 30 --pid "$pid" --percentage relative --no-children --sort dso,sym
      echo
      echo "== $label: refuged's own functions by inclusive time (self + callees), % of its samples"
      report "$dir/$name.data" 400 --pid "$pid" --percentage relative --children --sort dso,sym --percent-limit 1 |
        grep ' refuged ' | head -40 || true
    done
  } > "$f"
  echo "profile.sh: wrote $f ($(echo "$res" | field rps) req/s)" >&2
}

# callgrind mode: run the fixed count, stop the node(s) so callgrind writes
# its output, then annotate.
callgrind_profile() { # NAME URL KIND TITLE LABEL:DIR:PID...
  local name=$1 url=$2 kind=$3 title=$4; shift 4
  local res t f=$PROF_OUT/$name.txt
  res=$(fixed_requests "$url" "$kind" "$CG_REQUESTS")
  for t in "$@"; do stop_pid "${t##*:}"; done
  {
    echo "Profile: $title"
    echo "Generated by bench/profile.sh ($(date -u +%Y-%m-%dT%H:%MZ)); perf cannot sample here, so: valgrind --tool=callgrind,"
    echo "$CG_REQUESTS requests from one keep-alive client ($res req/s under valgrind). Instruction counts, inclusive."
    for t in "$@"; do
      local rest=${t#*:}
      echo
      echo "== ${t%%:*}"
      callgrind_annotate --inclusive=yes "${rest%:*}/callgrind.out" > "$dir/cg.txt" 2>&1 || true
      sed -n '/PROGRAM TOTALS/p; /file:function/,$p' "$dir/cg.txt" | head -45
    done
  } > "$f"
  echo "profile.sh: wrote $f" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------- 1. token-cc, 2. scim
if [[ " $ONLY " == *" token-cc "* || " $ONLY " == *" scim-create "* ]]; then
  port=$(free_port); base=http://127.0.0.1:$port
  node_conf bench "$dir/n" "$port"
  run_node "$dir/n"; npid=$LAST_PID
  tok=$(admin_token "$base" "$dir/n" "refuge:admin scim:write") || die "no admin token"
  secret=$(bench_client "$base" "$tok" bench-jwt jwt) || die "cannot create the JWT client"
  export TOKEN_SCOPE=api:read TOKEN_BASIC PROF_TOKEN=$tok PROF_PREFIX=cg
  TOKEN_BASIC=$(printf '%s' "bench-jwt:$secret" | base64 -w0)
  if [ "$TOOL" = perf ]; then
    [[ " $ONLY " == *" token-cc "* ]] && profile token-cc "$base/oauth2/token" "$ROOT/bench/wrk/token_cc.lua" 64 token \
      "refuged:$npid" "client_credentials grant, JWT access token signed ES256 (no store write)"
    [[ " $ONLY " == *" scim-create "* ]] && profile scim-create "$base/scim2/Users" "$dir/create.lua" 64 scim \
      "refuged:$npid" "POST /scim2/Users without a password (users + user_emails rows, group commit), one node"
    stop_pid "$npid"
  else
    [[ " $ONLY " == *" token-cc "* ]] && callgrind_profile token-cc "$base/oauth2/token" token \
      "client_credentials grant, JWT ES256" "refuged:$dir/n:$npid"
    if [[ " $ONLY " == *" scim-create "* ]]; then
      [[ " $ONLY " == *" token-cc "* ]] && { run_node "$dir/n"; npid=$LAST_PID; }
      callgrind_profile scim-create "$base/scim2/Users" scim "POST /scim2/Users without a password" "refuged:$dir/n:$npid"
    fi
  fi
fi

# ---------------------------------------------------------- 3. repl-write
if [[ " $ONLY " == *" repl-write "* ]]; then
  pa=$(free_port); pb=$(free_port); ra=$(free_port); rb=$(free_port)
  for n in a b; do
    if [ $n = a ]; then role=active hp=$pa lp=$ra pp=$rb; else role=standby hp=$pb lp=$rb pp=$ra; fi
    mkdir -p "$dir/$n"
    {
      printf '[node]\nname = %s\nregion = region-%s\ndata_dir = %s\ninitial_role = %s\nmaster_key_file = %s/master.key\n' \
        "$n" "$n" "$dir/$n" "$role" "$dir"
      printf '[http]\nlisten = 127.0.0.1:%s\nthreads = 2\npublic_url = https://idp.bench\n' "$hp"
      printf '[log]\nlevel = warn\nfile = %s/refuged.log\n' "$dir/$n"
      printf '[replication]\nlisten = 127.0.0.1:%s\npeer = 127.0.0.1:%s\nmode = async\nmax_lag_ms = 10s\ninsecure_plaintext = true\n' \
        "$lp" "$pp"
    } > "$dir/$n/refuge.conf"
  done
  run_node "$dir/a"; apid=$LAST_PID
  run_node "$dir/b"; bpid=$LAST_PID
  tok=$(admin_token "http://127.0.0.1:$pa" "$dir/a" "refuge:admin scim:write") || die "no admin token"
  export PROF_TOKEN=$tok PROF_PREFIX=cgr
  if [ "$TOOL" = perf ]; then
    profile repl-write "http://127.0.0.1:$pa/scim2/Users" "$dir/create.lua" 32 scim "active:$apid standby:$bpid" \
      "replicated write path: POST /scim2/Users without a password on the active of an async pair (loopback)"
    stop_pid "$apid"; stop_pid "$bpid"
  else
    callgrind_profile repl-write "http://127.0.0.1:$pa/scim2/Users" scim "replicated write path (async pair)" \
      "active:$dir/a:$apid" "standby:$dir/b:$bpid"
  fi
fi

#!/usr/bin/env bash
# bench/peers/postgres-repl.sh — the reference for bench/repl.sh: PostgreSQL 15
# streaming replication measured on this machine in the same run. A primary
# and a hot standby (pg_basebackup -R) on loopback, pgbench with 8 clients
# doing one-row inserts (the issue's reference setup):
#   - async: synchronous_commit = on, no synchronous standby;
#   - remote_apply: synchronous_standby_names = '*', synchronous_commit =
#     remote_apply;
#   - replay lag at a fixed offered load (pgbench --rate), sampled from
#     pg_stat_replication.replay_lag every 20 ms: p50 / p99;
#   - promote to first write: pg_ctl promote on the standby, then inserts
#     until the first one commits.
# Runs the servers as the `postgres` user (initdb refuses root). Prints one
# line per figure: PG_RESULT key=value ...  Used by bench/repl.sh when
# PostgreSQL 15 is installed; otherwise it exits 2.
set -euo pipefail
SECS=${BENCH_SECONDS:-5}
RATE=${BENCH_PG_RATE:-2000}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/postgres" ] && id postgres >/dev/null 2>&1 || { echo "PostgreSQL 15 not installed" >&2; exit 2; }
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
dir=$(mktemp -d)
chown postgres "$dir"
as_pg() { runuser -u postgres -- "$@"; }
P1=$(free_port); P2=$(free_port)
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$dir/standby" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
psql1() { as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$P1" -d postgres -qAt -c "$1"; }

start_pair() { # MODE
  cleanup_dirs
  as_pg "$PGBIN/initdb" -D "$dir/primary" -A trust >/dev/null
  cat >> "$dir/primary/postgresql.conf" <<EOF
port = $P1
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
shared_buffers = 128MB
EOF
  if [ "$1" = remote_apply ]; then
    printf "synchronous_standby_names = '*'\nsynchronous_commit = remote_apply\n" >> "$dir/primary/postgresql.conf"
  fi
  echo "host replication all 127.0.0.1/32 trust" >> "$dir/primary/pg_hba.conf"
  as_pg "$PGBIN/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
  as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -D "$dir/standby" -R >/dev/null
  sed -i "s/^port = .*/port = $P2/" "$dir/standby/postgresql.conf"
  as_pg "$PGBIN/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
  for _ in $(seq 1 200); do
    [ "$(psql1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
    sleep 0.05
  done
  psql1 "CREATE TABLE t (id bigserial PRIMARY KEY, v double precision NOT NULL)"
  echo "INSERT INTO t (v) VALUES (random());" > "$dir/insert.sql"
  chown postgres "$dir/insert.sql"
}
cleanup_dirs() {
  as_pg "$PGBIN/pg_ctl" -D "$dir/standby" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir/primary" "$dir/standby"
}
pgbench() { # extra args...
  as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$P1" -n -c 8 -j 2 -T "$SECS" -f "$dir/insert.sql" "$@" postgres 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

for mode in async remote_apply; do
  start_pair "$mode"
  echo "PG_RESULT mode=$mode tps=$(pgbench)"
done

# replay lag at a fixed rate (async)
start_pair async
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$P1" -n -c 8 -j 2 -T "$SECS" -R "$RATE" -f "$dir/insert.sql" postgres \
  >/dev/null 2>&1 &
bench_pid=$!
: > "$dir/lag.txt"
while kill -0 "$bench_pid" 2>/dev/null; do
  psql1 "SELECT COALESCE(EXTRACT(epoch FROM replay_lag) * 1000, 0) FROM pg_stat_replication" >> "$dir/lag.txt" || true
  sleep 0.02
done
wait "$bench_pid" || true
sort -n "$dir/lag.txt" > "$dir/lag.sorted"
n=$(wc -l < "$dir/lag.sorted")
if [ "$n" -gt 0 ]; then
  i50=$(( n * 50 / 100 + 1 )); i99=$(( n * 99 / 100 + 1 ))
  [ "$i99" -gt "$n" ] && i99=$n
  echo "PG_RESULT rate=$RATE lag_p50_ms=$(sed -n "${i50}p" "$dir/lag.sorted") lag_p99_ms=$(sed -n "${i99}p" "$dir/lag.sorted") samples=$n"
else
  echo "PG_RESULT rate=$RATE lag_p50_ms=n/a lag_p99_ms=n/a samples=0"
fi

# promote to first write
t0=$(date +%s%N)
as_pg "$PGBIN/pg_ctl" -D "$dir/standby" promote >/dev/null
until as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$P2" -d postgres -qAt -c "INSERT INTO t (v) VALUES (1)" >/dev/null 2>&1; do
  sleep 0.001
done
t1=$(date +%s%N)
echo "PG_RESULT promote_first_write_ms=$(( (t1 - t0) / 1000000 ))"

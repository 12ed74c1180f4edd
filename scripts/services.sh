#!/usr/bin/env bash
# The PostgreSQL and Redis servers the tests run against.
#
#   scripts/services.sh start    start both (a pair already running for this checkout is kept)
#   scripts/services.sh stop     stop both and delete their data
#   scripts/services.sh env      print `export DATABASE_URL=... REDIS_URL=...` (for eval)
#   scripts/services.sh status   exit 0 when both answer
#
# They are throwaway test fixtures, not a deployment (docs/operations.md covers that):
# loopback only, non-default ports (PostgreSQL 54329, Redis 63790, or the next free ones
# when another checkout holds those), trust auth, no durability. State for this checkout
# lives in .ci-state/services/, the data in /tmp/siyu-pg-<port> and /tmp/siyu-redis-<port>.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE="$ROOT/.ci-state/services"
PG_PORT_WANTED=${SIYU_PG_PORT:-54329}
REDIS_PORT_WANTED=${SIYU_REDIS_PORT:-63790}

say() { printf 'services: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"
  echo "$dir"
}

# initdb and postgres refuse to run as root: as root they run as the postgres user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd /tmp && runuser -u postgres -- "$@")
  else
    (cd /tmp && "$@")
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port=$1 tries=0
  while port_busy "$port"; do
    port=$((port + 1))
    tries=$((tries + 1))
    [ $tries -lt 50 ] || die "no free port from $1 to $port"
  done
  echo "$port"
}

pg_port() { cat "$STATE/pg.port" 2>/dev/null; }
redis_port() { cat "$STATE/redis.port" 2>/dev/null; }

pg_up() {
  local port
  port=$(pg_port) || return 1
  "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2
}

redis_up() {
  local port
  port=$(redis_port) || return 1
  [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]
}

start_pg() {
  local bin port dir
  bin=$(pg_bin)
  port=$(free_port "$PG_PORT_WANTED")
  dir=/tmp/siyu-pg-$port
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  # Test data is thrown away, so durability is traded for speed (fsync off).
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
  # CREATEDB: pytest-django creates a test database per xdist worker.
  "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE siyu LOGIN PASSWORD 'siyu' CREATEDB" \
    -c "CREATE DATABASE siyu OWNER siyu" >/dev/null
  echo "$port" >"$STATE/pg.port"
  say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $dir)"
}

start_redis() {
  local port dir
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  port=$(free_port "$REDIS_PORT_WANTED")
  dir=/tmp/siyu-redis-$port
  rm -rf "$dir"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  echo "$port" >"$STATE/redis.port"
  local i
  for i in $(seq 1 50); do
    redis_up && break
    sleep 0.1
  done
  redis_up || { cat "$dir/redis.log" >&2; die "Redis did not start"; }
  say "Redis $(redis-server --version | awk '{print $3}' | tr -d 'v=') on 127.0.0.1:$port (data $dir)"
}

stop_pg() {
  local port dir
  port=$(pg_port) || return 0
  dir=/tmp/siyu-pg-$port
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null || say "PostgreSQL on $port did not stop cleanly"
  fi
  rm -rf "$dir" "$STATE/pg.port"
}

stop_redis() {
  local port dir
  port=$(redis_port) || return 0
  dir=/tmp/siyu-redis-$port
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir" "$STATE/redis.port"
}

case "${1:-}" in
  start)
    mkdir -p "$STATE"
    if pg_up && redis_up; then
      say "already running (PostgreSQL $(pg_port), Redis $(redis_port))"
      exit 0
    fi
    # Half a pair (one crashed) is restarted whole.
    stop_pg
    stop_redis
    start_pg
    start_redis
    ;;
  stop)
    stop_pg
    stop_redis
    ;;
  env)
    pg_up && redis_up || die "not running; scripts/services.sh start"
    echo "export DATABASE_URL=postgres://siyu:siyu@127.0.0.1:$(pg_port)/siyu"
    echo "export REDIS_URL=redis://127.0.0.1:$(redis_port)/0"
    ;;
  status)
    pg_up && redis_up
    ;;
  *)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac

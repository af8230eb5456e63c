#!/usr/bin/env bash
# A throw-away PostgreSQL server for the store tests: `pg-local.sh start DIR PORT` / `pg-local.sh stop DIR`.
# Listens on 127.0.0.1 only, trusts local connections, user `tailor`. PostgreSQL refuses to run as root, so
# as root the server runs as the `postgres` system user.
set -euo pipefail
cmd=${1:?usage: pg-local.sh start DIR PORT | stop DIR}
dir=${2:?directory}
bindir=""
for candidate in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/lib/postgresql/*/bin; do
  if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then bindir=$candidate; break; fi
done
[ -n "$bindir" ] || { echo "pg-local: no PostgreSQL server binaries (initdb, pg_ctl) found" >&2; exit 3; }
as_owner=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "pg-local: running as root needs a 'postgres' user" >&2; exit 3; }
  as_owner=(runuser -u postgres --)
fi
case "$cmd" in
  start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U tailor --no-sync >"$dir/initdb.log" 2>&1
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -h 127.0.0.1 -p $port -F" start >/dev/null
    echo "postgresql+psycopg://tailor@127.0.0.1:$port/postgres"
    ;;
  stop)
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  *) echo "usage: pg-local.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

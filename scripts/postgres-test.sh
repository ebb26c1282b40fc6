#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the agent-secrets tests: initdb on a
# temp dir, run as the postgres user (PostgreSQL refuses to run as root),
# listening on a free loopback port only, password (SCRAM) authentication.
#   eval "$(bash scripts/postgres-test.sh start)"    # exports the URL and the dir
#   bash scripts/postgres-test.sh stop "$AGENT_SECRETS_TEST_POSTGRES_DIR"
# Needs Debian's postgresql package (scripts/test.sh installs it).
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "postgres-test.sh: no /usr/lib/postgresql/*/bin; apt-get install postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case ${1:-} in
  start)
    dir=$(mktemp -d /tmp/agent-secrets-pg.XXXXXX)
    chmod 0755 "$dir"
    pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    printf '%s\n' "$pw" > "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "export AGENT_SECRETS_TEST_DATABASE_URL=postgres://postgres:$pw@127.0.0.1:$port/postgres"
    echo "export AGENT_SECRETS_TEST_POSTGRES_DIR=$dir"
    ;;
  stop)
    dir=${2:?usage: postgres-test.sh stop DIR}
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: postgres-test.sh start | stop DIR" >&2; exit 64 ;;
esac

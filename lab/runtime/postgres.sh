#!/bin/sh
# Entrypoint of the lab's postgres service: initialise the cluster once, then run the server as postgres.
# The superuser, the application's database and its owner come from the compose project (lab3's differ).
set -eu
PGDATA=/var/lib/postgresql/data
SUPERUSER=${LAB_PG_SUPERUSER:-postgres} APP_DB=${APP_DB_NAME:-app} APP_USER=${APP_DB_USER:-app}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_postgres initdb -D "$PGDATA" --username="$SUPERUSER" --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  # Local sockets: the container's OS user postgres is the superuser, whatever the superuser's name.
  echo "lab postgres $SUPERUSER" >>"$PGDATA/pg_ident.conf"
  sed -Ei 's/^(local[[:space:]]+all[[:space:]]+all[[:space:]]+)peer$/\1peer map=lab/' "$PGDATA/pg_hba.conf"
  # Every lab host is a 127.0.2.N address: clients reach the server over loopback TCP with a password.
  echo "host all all 127.0.0.0/8 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # lab.conf is rewritten at each start; ALTER SYSTEM (postgresql.auto.conf) still overrides it.
  echo "include_if_exists = 'lab.conf'" >>"$PGDATA/postgresql.conf"
  fresh=1
fi

cat >"$PGDATA/lab.conf" <<CONF
listen_addresses = '$LAB_ADDR'
port = 5432
unix_socket_directories = '/var/run/postgresql'
shared_preload_libraries = 'pg_stat_statements'
max_connections = 100
log_min_duration_statement = -1
CONF
chown postgres:postgres "$PGDATA/lab.conf"

if [ "${fresh:-0}" = 1 ]; then
  # Create the application role and database before any client can connect (sockets only).
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -q -v ON_ERROR_STOP=1 -U "$SUPERUSER" -d postgres -v app_db="$APP_DB" -v app_user="$APP_USER" <<'SQL'
\getenv app_password APP_DB_PASSWORD
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
\c :"app_db"
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS amcheck;
SQL
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"

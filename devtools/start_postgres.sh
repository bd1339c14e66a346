#!/usr/bin/env bash
# A local PostgreSQL for the `rtqa serve --db postgresql://...` tests (CI, `.ci/run`):
# installs Debian's postgresql when absent, starts its cluster, creates the role `rtqa`
# and the database `rtqa_test` (the tests make one schema per test in it), and prints
# the URL to export as RTQA_TEST_PG_URL. Exit status non-zero (and nothing printed) when
# any step fails: the PostgreSQL tests then skip, the SQLite ones still run.
set -u
say() { echo "start_postgres: $*" >&2; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; } \
    || { say "postgresql could not be installed"; exit 1; }
fi
ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)
[ -n "$ver" ] || { say "no PostgreSQL server found"; exit 1; }
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
  pg_createcluster "$ver" main >/dev/null || { say "cannot create the cluster"; exit 1; }
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true   # already running is fine
pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online \
  || { say "the cluster $ver/main does not run"; exit 1; }
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
psql_su() { su postgres -c "psql -p $port -qtAc \"$1\""; }
psql_su "SELECT 1 FROM pg_roles WHERE rolname='rtqa'" | grep -q 1 \
  || psql_su "CREATE ROLE rtqa LOGIN PASSWORD 'rtqa'" >/dev/null \
  || { say "cannot create the role rtqa"; exit 1; }
psql_su "SELECT 1 FROM pg_database WHERE datname='rtqa_test'" | grep -q 1 \
  || su postgres -c "createdb -p $port -O rtqa rtqa_test" \
  || { say "cannot create the database rtqa_test"; exit 1; }
echo "postgresql://rtqa:rtqa@127.0.0.1:$port/rtqa_test"

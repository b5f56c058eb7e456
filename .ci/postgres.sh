#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite.
#
# Usage:
#   .ci/postgres.sh start [--reuse]   install PostgreSQL if needed, start a fresh
#                                      cluster, print `export ...` lines on stdout
#   .ci/postgres.sh stop [DIR]         stop the server and delete its temp folder
#   .ci/postgres.sh status [DIR]       tell whether the server answers
#   .ci/postgres.sh env [DIR]          print the `export ...` lines again
#
# `start` writes ONLY the export lines to stdout (all logs go to stderr), so:
#     pg_env=$(bash .ci/postgres.sh start) && eval "$pg_env"
# exports
#     PRIVACY_TEST_DATABASE_URL  postgresql+psycopg://privacy:privacy@127.0.0.1:PORT/privacy_test
#     PRIVACY_TEST_PG_BIN        directory holding pg_dump, psql, ... (same version as the server)
#     PRIVACY_CI_PG_DIR          temp folder of the cluster (data, socket, log) -- give it to `stop`
#     PRIVACY_CI_PG_PORT         TCP port the server listens on (127.0.0.1 only)
#
# Every `start` creates a new cluster in a fresh `mktemp -d` folder; when the
# port is busy (e.g. a previous server is still running) the next free port is
# used. With --reuse (or PG_REUSE=1) a still-running server from the last
# `start` is reused instead and its privacy_test database is recreated empty.
#
# Environment knobs:
#   PGPORT         first port to try (default 54329)
#   PG_BIN         PostgreSQL bin dir (default: newest /usr/lib/postgresql/*/bin)
#   PG_OS_USER     unprivileged OS user running the server when we are root
#                  (default: postgres, created if missing)
#   PG_ENV_FILE    also write the export lines to this file
#   PG_KEEP=1      `stop` leaves the temp folder (data + log) in place
#
# The server is a disposable test server: fsync is off, the superuser
# `postgres` has no password and is reachable only through the unix socket
# inside the temp folder; TCP (127.0.0.1) needs a password (scram-sha-256).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8 LANG=C.UTF-8

DB_USER=privacy
DB_PASSWORD=privacy
DB_NAME=privacy_test
FIRST_PORT=${PGPORT:-54329}
STATE_FILE="${TMPDIR:-/tmp}/privacy-test-pg.$(id -u).last"   # last started cluster

log() { printf '[postgres.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- binaries --
find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] || die "PG_BIN=$PG_BIN has no initdb"
        printf '%s\n' "$PG_BIN"
        return 0
    fi
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/pg_dump" ] || continue
        best=$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1)
    done
    [ -n "$best" ] || return 1
    printf '%s\n' "$best"
}

install_postgres() {
    local sudo=""
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 || die "PostgreSQL is not installed and we are not root (install the 'postgresql' package)"
        sudo="sudo -n"
    fi
    log "PostgreSQL binaries not found: installing from Debian (apt-get install postgresql)"
    if [ "${CI:-}" = "true" ]; then
        # Fresh CI machine: no need for the package's default cluster on 5432.
        $sudo mkdir -p /etc/postgresql-common/createcluster.d
        echo 'create_main_cluster = false' |
            $sudo tee /etc/postgresql-common/createcluster.d/50-privacy-ci.conf >/dev/null
    fi
    local t0=$SECONDS
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 update -q >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -q \
        --no-install-recommends postgresql >&2
    log "PostgreSQL installed in $((SECONDS - t0))s"
}

# ------------------------------------------------------------ run as user --
PG_OS_USER=${PG_OS_USER:-postgres}

ensure_os_user() {
    is_root || return 0
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        log "creating unprivileged OS user $PG_OS_USER"
        useradd --system --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
}

# as_pg DIR CMD...: run CMD (cwd DIR) as the unprivileged user when we are root
as_pg() {
    local dir=$1; shift
    if is_root; then
        if command -v runuser >/dev/null 2>&1; then
            (cd "$dir" && runuser -u "$PG_OS_USER" -- "$@")
        else
            (cd "$dir" && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")")
        fi
    else
        (cd "$dir" && "$@")
    fi
}

# ------------------------------------------------------------------ ports --
port_in_use() {
    # connect succeeds -> something listens
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local p=$FIRST_PORT last=$((FIRST_PORT + 50))
    while [ "$p" -le "$last" ]; do
        if ! port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
        log "port $p is busy, trying $((p + 1))"
        p=$((p + 1))
    done
    die "no free port in $FIRST_PORT..$last"
}

# ------------------------------------------------------------------ state --
# Each cluster folder holds: data/ sock/ postgres.log env bin port
print_env() {
    local dir=$1
    cat "$dir/env"
}

resolve_dir() {
    local dir=${1:-${PRIVACY_CI_PG_DIR:-}}
    if [ -z "$dir" ] && [ -f "$STATE_FILE" ]; then
        dir=$(cat "$STATE_FILE")
    fi
    printf '%s\n' "$dir"
}

server_alive() {
    local dir=$1
    [ -n "$dir" ] && [ -f "$dir/port" ] && [ -f "$dir/bin" ] || return 1
    local bin port
    bin=$(cat "$dir/bin"); port=$(cat "$dir/port")
    "$bin/pg_isready" -q -h "$dir/sock" -p "$port" -t 3
}

psql_super() {
    local dir=$1; shift
    local bin port
    bin=$(cat "$dir/bin"); port=$(cat "$dir/port")
    as_pg "$dir" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" \
        -U postgres -d postgres "$@"
}

create_db() {
    local dir=$1
    psql_super "$dir" -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >&2
    psql_super "$dir" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
}

# ------------------------------------------------------------------ start --
STARTING_DIR=""
on_start_failure() {
    local rc=$?
    [ "$rc" -ne 0 ] && [ -n "$STARTING_DIR" ] || return 0
    log "start failed (exit $rc); removing $STARTING_DIR"
    if [ -f "$STARTING_DIR/postgres.log" ]; then
        tail -n 40 "$STARTING_DIR/postgres.log" >&2 || true
    fi
    cmd_stop "$STARTING_DIR" || true
    exit "$rc"
}

cmd_start() {
    local reuse=${PG_REUSE:-0}
    while [ $# -gt 0 ]; do
        case $1 in
            --reuse) reuse=1 ;;
            --fresh) reuse=0 ;;
            *) die "unknown option for start: $1" ;;
        esac
        shift
    done

    if [ "$reuse" = 1 ]; then
        local old
        old=$(resolve_dir "")
        if server_alive "$old"; then
            log "reusing running server in $old (recreating database $DB_NAME)"
            create_db "$old"
            emit_env "$old"
            return 0
        fi
    fi

    if [ -n "${PG_BIN:-}" ] && [ ! -x "$PG_BIN/initdb" ]; then
        die "PG_BIN=$PG_BIN has no initdb"
    fi
    local bin
    if ! bin=$(find_pg_bin); then
        install_postgres
        bin=$(find_pg_bin) || die "PostgreSQL installed but no initdb under /usr/lib/postgresql/*/bin"
    fi
    log "using PostgreSQL binaries in $bin ($("$bin/postgres" --version))"
    ensure_os_user

    local dir port
    dir=$(mktemp -d "${TMPDIR:-/tmp}/privacy-pg.XXXXXX")
    # clean up a half-started cluster if anything below fails
    STARTING_DIR=$dir
    trap on_start_failure EXIT

    mkdir -p "$dir/sock"
    printf '%s\n' "$bin" >"$dir/bin"
    if is_root; then
        chown -R "$PG_OS_USER" "$dir"
    fi
    chmod 700 "$dir"

    log "initdb into $dir/data"
    as_pg "$dir" "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    port=$(pick_port)
    printf '%s\n' "$port" >"$dir/port"
    cat >>"$dir/data/postgresql.conf" <<EOF

# ---- privacy test server (.ci/postgres.sh) ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
max_parallel_workers_per_gather = 0
timezone = 'UTC'
log_timezone = 'UTC'
EOF

    log "starting server on 127.0.0.1:$port"
    as_pg "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >&2 ||
        die "pg_ctl start failed"

    local i
    for i in $(seq 1 60); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; then
            break
        fi
        [ "$i" -eq 60 ] && die "server did not answer pg_isready within 60s"
        sleep 1
    done
    log "server is ready"

    psql_super "$dir" -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB" >&2
    create_db "$dir"

    cat >"$dir/env" <<EOF
export PRIVACY_TEST_DATABASE_URL='postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/$DB_NAME'
export PRIVACY_TEST_PG_BIN='$bin'
export PRIVACY_CI_PG_DIR='$dir'
export PRIVACY_CI_PG_PORT='$port'
EOF
    printf '%s\n' "$dir" >"$STATE_FILE" 2>/dev/null || log "WARNING: cannot write $STATE_FILE"
    trap - EXIT
    emit_env "$dir"
}

emit_env() {
    local dir=$1
    if [ -n "${PG_ENV_FILE:-}" ]; then
        print_env "$dir" >"$PG_ENV_FILE"
    fi
    log "PRIVACY_TEST_DATABASE_URL=$(sed -n "s/^export PRIVACY_TEST_DATABASE_URL='\(.*\)'$/\1/p" "$dir/env")"
    log "PRIVACY_TEST_PG_BIN=$(cat "$dir/bin")"
    log "stop with: bash .ci/postgres.sh stop $dir"
    print_env "$dir"
}

# ------------------------------------------------------------------- stop --
cmd_stop() {
    local dir
    dir=$(resolve_dir "${1:-}")
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        log "nothing to stop"
        return 0
    fi
    case $(basename "$dir") in
        privacy-pg.*) ;;
        *) die "refusing to touch $dir (not a .ci/postgres.sh folder)" ;;
    esac
    if [ -f "$dir/bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
        local bin
        bin=$(cat "$dir/bin")
        log "stopping server in $dir"
        as_pg "$dir" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2 ||
            as_pg "$dir" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2 ||
            log "WARNING: pg_ctl stop failed"
    fi
    if [ "${PG_KEEP:-0}" = 1 ]; then
        log "keeping $dir (PG_KEEP=1)"
    else
        rm -rf -- "$dir"
    fi
    if [ -f "$STATE_FILE" ] && [ "$(cat "$STATE_FILE")" = "$dir" ]; then
        rm -f -- "$STATE_FILE"
    fi
}

cmd_status() {
    local dir
    dir=$(resolve_dir "${1:-}")
    if server_alive "$dir"; then
        log "running: $dir (port $(cat "$dir/port"))"
    else
        log "not running"
        return 1
    fi
}

cmd_env() {
    local dir
    dir=$(resolve_dir "${1:-}")
    [ -n "$dir" ] && [ -f "$dir/env" ] || die "no server found"
    print_env "$dir"
}

case ${1:-start} in
    start) shift || true; cmd_start "$@" ;;
    stop) shift; cmd_stop "${1:-}" ;;
    status) shift; cmd_status "${1:-}" ;;
    env) shift; cmd_env "${1:-}" ;;
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command: $1 (start|stop|status|env)" ;;
esac

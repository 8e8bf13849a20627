# Sourced by scripts/test: starts a throwaway PostgreSQL cluster for the
# Postgres state tests and exports CIPHERFLOW_TEST_POSTGRES; stops and
# deletes it when the calling shell exits. Without PostgreSQL's server
# programs (Debian: apt-get install postgresql) it says so and the tests
# run on SQLite only.
#
# The cluster listens on a Unix socket in its own directory only (no TCP
# port to collide with), trusts local connections, and is owned by an
# unprivileged user when run as root (the server refuses to run as root).

cipherflow_pg_bin() {
    local d
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

start_throwaway_postgres() {
    local bin dir as=()
    if ! bin="$(cipherflow_pg_bin)"; then
        echo "PostgreSQL's server is not installed: the Postgres state tests are skipped" \
            "(apt-get install postgresql to run them)"
        return 0
    fi
    dir="$(mktemp -d /tmp/cipherflow-pg.XXXXXX)"
    if [[ "$(id -u)" == 0 ]]; then
        local user=postgres
        id "$user" >/dev/null 2>&1 || user=nobody
        chown "$user" "$dir"
        as=(runuser -u "$user" --)
    fi
    "${as[@]}" "$bin/initdb" --pgdata "$dir/data" --auth trust --username cipherflow \
        --no-sync --encoding UTF8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log"
        return 1
    }
    "${as[@]}" "$bin/pg_ctl" --pgdata "$dir/data" --log "$dir/server.log" --wait \
        --options "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200" \
        start >/dev/null || {
        cat "$dir/server.log"
        return 1
    }
    # A URL (what `--state` takes), the socket's directory as its host.
    export CIPHERFLOW_TEST_POSTGRES="postgresql:///postgres?host=$dir&user=cipherflow"
    CIPHERFLOW_PG_STOP=("${as[@]}" "$bin/pg_ctl" --pgdata "$dir/data" --mode immediate stop)
    CIPHERFLOW_PG_DIR="$dir"
    trap 'stop_throwaway_postgres' EXIT
    echo "throwaway PostgreSQL ($("$bin/pg_ctl" --version)) on the socket in $dir"
}

stop_throwaway_postgres() {
    if [[ -n "${CIPHERFLOW_PG_DIR:-}" ]]; then
        "${CIPHERFLOW_PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$CIPHERFLOW_PG_DIR"
        CIPHERFLOW_PG_DIR=""
    fi
}

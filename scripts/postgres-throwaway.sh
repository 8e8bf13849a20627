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

cipherflow_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A test CA, a server certificate for localhost signed by it, another CA,
# and the cluster's configuration for TLS on 127.0.0.1 only.
cipherflow_pg_tls() {
    local dir="$1" t="$1/tls"
    shift
    mkdir -p "$t"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    for ca in ca other-ca; do
        openssl req -x509 "${ec[@]}" -keyout "$t/$ca.key" -out "$t/$ca.pem" -days 2 \
            -subj "/CN=cipherflow test $ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
    done
    openssl req "${ec[@]}" -keyout "$t/server.key" -out "$t/server.csr" \
        -subj "/CN=localhost" 2>/dev/null || return 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        >"$t/server.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
        -CAcreateserial -out "$t/server.pem" -days 2 -extfile "$t/server.ext" 2>/dev/null ||
        return 1
    cp "$t/server.pem" "$t/server.key" "$dir/data/"
    chmod 600 "$dir/data/server.key"
    [[ $# -gt 0 ]] && chown "$(stat -c %U "$dir")" "$dir/data/server.pem" "$dir/data/server.key"
    cat >>"$dir/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
CONF
    cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
hostssl all fl_scram 127.0.0.1/32 scram-sha-256
hostssl all all 127.0.0.1/32 trust
hostnossl all all 0.0.0.0/0 reject
HBA
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
    local listen="''" tls=0 port
    if command -v openssl >/dev/null 2>&1 && port="$(cipherflow_free_port)"; then
        cipherflow_pg_tls "$dir" "${as[@]}" && tls=1 && listen="127.0.0.1"
    else
        echo "openssl is missing: the tests of TLS to Postgres are skipped"
    fi
    "${as[@]}" "$bin/pg_ctl" --pgdata "$dir/data" --log "$dir/server.log" --wait \
        --options "-c listen_addresses=$listen -c port=${port:-5432} \
            -c unix_socket_directories='$dir' -c max_connections=200" \
        start >/dev/null || {
        cat "$dir/server.log"
        return 1
    }
    # A URL (what `--state` takes), the socket's directory as its host.
    export CIPHERFLOW_TEST_POSTGRES="postgresql:///postgres?host=$dir&user=cipherflow&port=${port:-5432}"
    if [[ "$tls" == 1 ]]; then
        # TLS on TCP (the server refuses TCP without it): trusted for
        # cipherflow, SCRAM for fl_scram (a role the tests create, and
        # whose connections require channel binding); the CA that signed
        # the server, and one that did not.
        export CIPHERFLOW_TEST_POSTGRES_TLS="postgresql://cipherflow@localhost:$port/postgres"
        export CIPHERFLOW_TEST_POSTGRES_SCRAM="postgresql://fl_scram:scram-test-password@localhost:$port/postgres?channel_binding=require"
        export CIPHERFLOW_TEST_POSTGRES_CA="$dir/tls/ca.pem"
        export CIPHERFLOW_TEST_POSTGRES_OTHER_CA="$dir/tls/other-ca.pem"
    fi
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

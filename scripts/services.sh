# The services the API tests talk to, for scripts/test.sh (sourced after common.sh, not run):
# PostgreSQL at $STREETWATCH_TEST_PG and Mosquitto at $STREETWATCH_TEST_MQTT. One that is reachable is
# used as it is (development machines, CI). Otherwise a private instance is started from Debian's packages
# on a free port with a scratch directory, the variable is pointed at it, and it is stopped and its
# directory removed when the script exits, whatever the tests did.
#
#   find_services              which of the two are missing (fills PRIVATE_SERVICES, their Debian packages)
#   start_private_services     start those, export the variables, arm the clean-up

export STREETWATCH_TEST_PG=${STREETWATCH_TEST_PG:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
export STREETWATCH_TEST_MQTT=${STREETWATCH_TEST_MQTT:-127.0.0.1:1883}
PRIVATE_SERVICES=()  # Debian package names: postgresql, mosquitto
SERVICES_DIR=""      # scratch directory of the private instances (mktemp), removed on exit
PG_BIN=""             # /usr/lib/postgresql/<version>/bin of the private PostgreSQL
PG_DATA=""
MOSQUITTO_PID=""

services_error() {
    echo "error: $*" >&2
    exit 2
}

# "HOST PORT" of a SQLAlchemy/libpq URL such as postgresql+psycopg://postgres@127.0.0.1:5432/test.
pg_address() {
    local pattern='^[a-z0-9+]+://([^@/]*@)?([^:/@]+)(:([0-9]+))?/'
    [[ $STREETWATCH_TEST_PG =~ $pattern ]] || services_error "STREETWATCH_TEST_PG=$STREETWATCH_TEST_PG:" \
        "expected postgresql+psycopg://USER@HOST[:PORT]/DATABASE"
    echo "${BASH_REMATCH[2]} ${BASH_REMATCH[4]:-5432}"
}

# "HOST PORT" of STREETWATCH_TEST_MQTT (HOST:PORT).
mqtt_address() {
    [[ $STREETWATCH_TEST_MQTT =~ ^([^:]+):([0-9]+)$ ]] || services_error \
        "STREETWATCH_TEST_MQTT=$STREETWATCH_TEST_MQTT: expected HOST:PORT, e.g. 127.0.0.1:1883"
    echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

reachable() {  # HOST PORT: a TCP connection is accepted within 3 s
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

find_services() {
    local name variable address package
    for name in PostgreSQL Mosquitto; do
        if [ "$name" = PostgreSQL ]; then
            variable=STREETWATCH_TEST_PG address=$(pg_address) package=postgresql
        else
            variable=STREETWATCH_TEST_MQTT address=$(mqtt_address) package=mosquitto
        fi
        # shellcheck disable=SC2086  # address is "HOST PORT"
        if reachable $address; then
            echo "== $name: using the one at ${address/ /:} ($variable)"
        else
            echo "== $name: nothing at ${address/ /:} ($variable); a private one will be started"
            PRIVATE_SERVICES+=("$package")
        fi
    done
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: as root, run its programs as Debian's postgres user.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_private_postgres() {
    local port dir
    # Debian keeps the server programs off PATH, per major version; the newest installed one.
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -x "$PG_BIN/initdb" ] \
        || services_error "no PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    port=$(free_port)
    dir=$SERVICES_DIR/postgresql
    mkdir "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; services_error "initdb failed in $dir/data"; }
    PG_DATA=$dir/data
    # Scratch data: no fsync. Socket in the scratch directory, TCP on loopback only.
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$dir/postgresql.log" -w -t 60 \
        -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
        || { cat "$dir/postgresql.log" >&2; services_error "PostgreSQL did not start on port $port"; }
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres test
    export STREETWATCH_TEST_PG="postgresql+psycopg://postgres@127.0.0.1:$port/test"
    echo "== PostgreSQL: private instance on 127.0.0.1:$port (pid $(head -n 1 "$PG_DATA/postmaster.pid")," \
        "data in $PG_DATA)"
}

start_private_mosquitto() {
    local port dir
    port=$(free_port)
    dir=$SERVICES_DIR/mosquitto
    mkdir "$dir"
    printf '%s\n' "listener $port 127.0.0.1" "allow_anonymous true" "persistence false" "log_dest stderr" \
        >"$dir/mosquitto.conf"
    mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
    MOSQUITTO_PID=$!
    for _ in $(seq 1 50); do
        reachable 127.0.0.1 "$port" && break
        kill -0 "$MOSQUITTO_PID" 2>/dev/null || break
        sleep 0.2
    done
    reachable 127.0.0.1 "$port" \
        || { cat "$dir/mosquitto.log" >&2; services_error "Mosquitto did not start on port $port"; }
    export STREETWATCH_TEST_MQTT="127.0.0.1:$port"
    echo "== Mosquitto: private instance on 127.0.0.1:$port (pid $MOSQUITTO_PID, config in $dir)"
}

# EXIT trap: stop what was started, remove the scratch directory, keep the script's exit status.
stop_private_services() {
    local status=$?
    if [ -n "$MOSQUITTO_PID" ]; then
        kill "$MOSQUITTO_PID" 2>/dev/null || true
        wait "$MOSQUITTO_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$SERVICES_DIR"
    echo "== private services stopped, $SERVICES_DIR removed"
    exit "$status"
}

start_private_services() {
    [ ${#PRIVATE_SERVICES[@]} -gt 0 ] || return 0
    SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/streetwatch-services.XXXXXX")
    chmod 755 "$SERVICES_DIR"  # the postgres user works in a folder below it
    trap stop_private_services EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local service
    for service in "${PRIVATE_SERVICES[@]}"; do
        if [ "$service" = postgresql ]; then start_private_postgres; else start_private_mosquitto; fi
    done
}

#!/usr/bin/env bash
# Checks that scripts/test.sh holds on a box where no PostgreSQL or Mosquitto is running:
#  1. fresh box: test.sh in a new network namespace (only its own loopback; nothing of this machine, its
#     PostgreSQL and Mosquitto included, is reachable) with CI=true, so that a missing service fails
#     rather than skips. It must start private instances, pass the tests on them and leave no process or
#     directory behind;
#  2. machine's services: test.sh as usual, where the default addresses are reachable. It must use them
#     and start nothing.
#
#   sudo bash scripts/check_fresh_box.sh [PYTEST ARGS]
#
# PYTEST ARGS default to tests/api/test_notify.py tests/api/test_ingest.py: webhooks, MQTT and ingest (with
# concurrent retries), each on SQLite and PostgreSQL.
#
# Root only (unshare --net). The namespace has no network, so what needs one happens first, outside:
# the Debian packages (test.sh's, postgresql, mosquitto), the venv ($STREETWATCH_VENV, default .venv),
# and a wheelhouse for the pip steps that test.sh repeats inside (the editable build's setuptools and
# wheel; opencv-python-headless, reinstalled over Ultralytics' opencv-python).
source "$(dirname "$0")/common.sh"

[ "$(id -u)" -eq 0 ] || { echo "error: run as root: unshare --net needs it" >&2; exit 2; }
SELECTION=("$@")
[ ${#SELECTION[@]} -gt 0 ] || SELECTION=(tests/api/test_notify.py tests/api/test_ingest.py)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streetwatch-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
check() {  # DESCRIPTION COMMAND...: one line per check, counted
    if "${@:2}"; then echo "  ok    $1"; else echo "  FAIL  $1"; failures=$((failures + 1)); fi
}
summary() { grep -E '^=+ .*[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$1" | tail -n 1; }
# pytest's summary says "passed" and none of failed, error, skipped, xfailed.
all_passed() { summary "$1" | grep -q " passed" && ! summary "$1" | grep -Eq "failed|error|skipped|xfail"; }
# From test.sh's lines "== NAME: private instance on 127.0.0.1:PORT (pid PID, ...)" and
# "== private services stopped, DIR removed": the instance's pid, the scratch directory.
pid_of() { sed -n "s/^== $1: private instance on [0-9.:]* (pid \([0-9]*\),.*/\1/p" "$2" | head -n 1; }
scratch_dir() { sed -n 's/^== private services stopped, \(\/.*\) removed$/\1/p' "$1" | head -n 1; }
stopped() {  # PID DIR: within 5 s, PID is not a process started from DIR (gone, a zombie, or reused)
    local _
    [ -n "$1" ] && [ -n "$2" ] || return 1
    for _ in $(seq 1 50); do
        grep -qF -- "$2" "/proc/$1/cmdline" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}
removed() { [ -n "$1" ] && [ ! -e "$1" ] && ! pgrep -f -- "$1" >/dev/null; }  # no process runs from it

echo "== preparing outside the namespace: Debian packages, $VENV, offline wheels"
install_debian_packages postgresql mosquitto
install_python store,dev,train
"$VENV/bin/python" -m pip download -q --no-deps --only-binary :all: -d "$WORK/wheels" \
    setuptools wheel packaging opencv-python-headless

echo "== 1/2 fresh box: bash scripts/test.sh -v -rs ${SELECTION[*]} in a new network namespace"
START=$SECONDS
status=0
unshare --net env CI=true PIP_NO_INDEX=1 PIP_FIND_LINKS="$WORK/wheels" bash -c \
    'ip link set lo up && exec bash scripts/test.sh -v -rs "$@"' _ "${SELECTION[@]}" 2>&1 \
    | tee "$WORK/fresh.log" || status=$?
FRESH_S=$((SECONDS - START))
pg_pid=$(pid_of PostgreSQL "$WORK/fresh.log")
mqtt_pid=$(pid_of Mosquitto "$WORK/fresh.log")
scratch=$(scratch_dir "$WORK/fresh.log")
echo "== 1/2 fresh box: checks"
check "test.sh exited 0 (got $status)" [ "$status" -eq 0 ]
check "a private PostgreSQL started (pid ${pg_pid:-none})" [ -n "$pg_pid" ]
check "a private Mosquitto started (pid ${mqtt_pid:-none})" [ -n "$mqtt_pid" ]
check "every selected test passed, none skipped" all_passed "$WORK/fresh.log"
check "tests ran on PostgreSQL" grep -q "\[postgresql\] PASSED" "$WORK/fresh.log"
check "a message went through the private broker" \
    grep -q "test_mqtt_message_reaches_the_units_topic\[postgresql\] PASSED" "$WORK/fresh.log"
check "PostgreSQL stopped" stopped "$pg_pid" "$scratch"
check "Mosquitto stopped" stopped "$mqtt_pid" "$scratch"
check "their scratch directory ${scratch:-(none reported)} removed" removed "$scratch"

echo "== 2/2 this machine's services: bash scripts/test.sh -v -rs ${SELECTION[*]}"
answers() { timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
if ! answers 5432 || ! answers 1883; then
    echo "  skipped: no PostgreSQL at 127.0.0.1:5432 or no Mosquitto at 127.0.0.1:1883 on this machine"
else
    START=$SECONDS
    status=0
    env -u STREETWATCH_TEST_PG -u STREETWATCH_TEST_MQTT CI=true \
        bash scripts/test.sh -v -rs "${SELECTION[@]}" 2>&1 | tee "$WORK/machine.log" || status=$?
    MACHINE_S=$((SECONDS - START))
    echo "== 2/2 this machine's services: checks"
    check "test.sh exited 0 (got $status)" [ "$status" -eq 0 ]
    check "used the PostgreSQL at 127.0.0.1:5432" grep -q "^== PostgreSQL: using the one at 127.0.0.1:5432" \
        "$WORK/machine.log"
    check "used the Mosquitto at 127.0.0.1:1883" grep -q "^== Mosquitto: using the one at 127.0.0.1:1883" \
        "$WORK/machine.log"
    check "started nothing" bash -c '! grep -q "private instance" "$1"' _ "$WORK/machine.log"
    check "every selected test passed, none skipped" all_passed "$WORK/machine.log"
fi

echo "== fresh box: $(summary "$WORK/fresh.log") (test.sh ${FRESH_S} s)"
[ -z "${MACHINE_S:-}" ] || echo "== this machine: $(summary "$WORK/machine.log") (test.sh ${MACHINE_S} s)"
if [ "$failures" -gt 0 ]; then
    echo "== $failures check(s) FAILED" >&2
    exit 1
fi
echo "== all checks passed"

#!/usr/bin/env bash
# Fuzzes the admin API against its OpenAPI document (master/openapi.json) with schemathesis.
# Run it before a release; it is not part of the CI test command.
#
# What it does: builds the real `gpt-load` binary, starts it on a loopback port with a throw-away
# SQLite database and a random AUTH_KEY, installs a pinned schemathesis into target/fuzz-venv,
# runs a bounded fuzz (examples per operation, a wall-clock limit) and exits non-zero when
# schemathesis reports a failure or the server log shows a panic. Checks: no 5xx, documented
# status codes, content types and headers, response bodies that match their schema, and (with
# negative data) no 2xx for input the document forbids.
#
# Confinement: when `unshare -rn` works (Linux, unprivileged user namespaces) the server and
# the fuzzer run in a network namespace that has only loopback, so fuzzed upstream URLs (key
# validation and key tests reach upstreams) go nowhere. Elsewhere those two operations are left
# out and the run says so.
#
# Knobs (environment):
#   FUZZ_MAX_EXAMPLES  examples per operation and generation mode (default 40)
#   FUZZ_TIME_LIMIT    seconds for the whole schemathesis run (default 1200)
#   FUZZ_SEED          hypothesis seed (default: random; printed so a run can be repeated)
#   FUZZ_MODES         schemathesis data generation: positive, negative or all (default all)
#   FUZZ_RELEASE=1     fuzz a release build instead of a debug one
#   FUZZ_BIN           fuzz this gpt-load binary as it is (no build)
#   FUZZ_POSITIVE=1    also fail when valid input (per the document) is refused with 400:
#                      noisy, since the document cannot express every rule (a standard group
#                      needs upstreams and a test model, a proxy key must exist, reorder ids
#                      must exist, settings names); useful to review by hand
#
# Usage: scripts/fuzz-admin.sh [extra schemathesis arguments]

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SCHEMATHESIS_VERSION=3.39.16
# schemathesis 3.x uses hypothesis internals that later hypothesis releases removed
# ("'many' object has no attribute 'more'").
HYPOTHESIS_SPEC="hypothesis<6.131"
VENV="$ROOT/target/fuzz-venv"
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-40}
TIME_LIMIT=${FUZZ_TIME_LIMIT:-1200}
SEED=${FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}
MODES=${FUZZ_MODES:-all}

# What refusing input the document forbids may answer: schemathesis' default set, plus 429
# (a wrong proxy key on /api/integration/info counts towards the address's throttle) and 413.
NEGATIVE_REFUSALS=400,401,403,404,406,413,422,428,429
# The checks: every response is judged against the document, both ways.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection

if [[ "${1:-}" == "--inner" ]]; then
    shift
    # Inside the (possibly namespaced) run: $WORK, $BIN, $EXCLUDES come from the outer part.
    ip link set lo up 2>/dev/null || true
    free_port() {
        "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    }
    PORT=$(free_port)
    GRPC=$(free_port)
    AUTH_KEY="fuzz-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    env AUTH_KEY="$AUTH_KEY" HOST=127.0.0.1 PORT="$PORT" GRPC_PORT="$GRPC" \
        DATABASE_DSN="$WORK/gpt-load.db" LOG_LEVEL=info NO_COLOR=1 \
        "$BIN" >"$WORK/server.log" 2>&1 &
    SERVER=$!
    trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
    BASE="http://127.0.0.1:$PORT"
    for _ in $(seq 1 150); do
        if curl -fsS "$BASE/health" >/dev/null 2>&1; then break; fi
        if ! kill -0 "$SERVER" 2>/dev/null; then
            echo "fuzz-admin: the server exited at start:" >&2
            cat "$WORK/server.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    # Something to work on: operations on `{id}` reach real groups and keys (ids 1 to 3) instead
    # of answering 404 to every generated id.
    seed() {
        curl -fsS -X POST "$BASE$1" -H "Authorization: Bearer $AUTH_KEY" \
            -H "Content-Type: application/json" -d "$2" >/dev/null
    }
    seed /api/groups '{"name":"fuzz-openai","channel_type":"openai","test_model":"gpt-4o-mini","upstreams":[{"url":"http://127.0.0.1:9/v1","weight":1}]}'
    seed /api/groups '{"name":"fuzz-gemini","channel_type":"gemini","test_model":"gemini-2.0-flash","upstreams":[{"url":"http://127.0.0.1:9","weight":1}]}'
    seed /api/groups '{"name":"fuzz-aggregate","group_type":"aggregate","channel_type":"openai"}'
    seed /api/groups/3/sub-groups '{"sub_groups":[{"group_id":1,"weight":10}]}'
    seed /api/keys/add-multiple '{"group_id":1,"keys_text":"sk-fuzz-1\nsk-fuzz-2\nsk-fuzz-3"}'
    seed /api/keys/add-multiple '{"group_id":2,"keys_text":"AIza-fuzz-1"}'
    echo "fuzz-admin: gpt-load on $BASE (pid $SERVER), seed $SEED, $MAX_EXAMPLES examples per operation, modes $MODES, at most ${TIME_LIMIT}s"
    set +e
    # `/api/auth/login` is left out: wrong keys from one address are throttled (429 for every
    # admin route from it for minutes), which would turn the rest of the run into 429s.
    # shellcheck disable=SC2086
    PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=${FUZZ_HOOKS:-fuzz_admin_hooks} \
        timeout --signal=INT "$TIME_LIMIT" "$VENV/bin/st" run "$ROOT/master/openapi.json" \
        --base-url "$BASE" \
        -H "Authorization: Bearer $AUTH_KEY" \
        -H "Accept-Language: en-US" \
        --checks "$CHECKS" \
        --experimental-negative-data-rejection-allowed-statuses "$NEGATIVE_REFUSALS" \
        --data-generation-method "$MODES" \
        --hypothesis-max-examples "$MAX_EXAMPLES" \
        --hypothesis-seed "$SEED" \
        --hypothesis-deadline None \
        --hypothesis-suppress-health-check all \
        --request-timeout 20000 \
        --exclude-path /api/auth/login \
        $EXCLUDES \
        $POSITIVE \
        --junit-xml "$WORK/junit.xml" \
        --experimental=openapi-3.1 \
        --no-color \
        "$@" 2>&1 | tee "$WORK/schemathesis.log"
    RC=${PIPESTATUS[0]}
    set -e
    # Every response gets the no-5xx check, so its count is the number of requests judged.
    CASES=$(grep -a -m1 -E '^ +not_a_server_error +[0-9]+ / [0-9]+' "$WORK/schemathesis.log" | awk '{print $4}' || true)
    echo "fuzz-admin: schemathesis exit code $RC, ${CASES:-no} cases judged"
    if [[ $RC -eq 124 || $RC -eq 130 ]]; then
        echo "fuzz-admin: the time limit (${TIME_LIMIT}s) ended the run before it finished" >&2
    fi
    if grep -aq "panicked" "$WORK/server.log"; then
        echo "fuzz-admin: the server panicked:" >&2
        grep -a -A5 "panicked" "$WORK/server.log" | head -40 >&2
        RC=1
    fi
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "fuzz-admin: the server died during the run" >&2
        tail -40 "$WORK/server.log" >&2
        RC=1
    fi
    exit "$RC"
fi

if [[ -n "${FUZZ_BIN:-}" ]]; then
    BIN=$(cd "$(dirname "$FUZZ_BIN")" && pwd)/$(basename "$FUZZ_BIN")
elif [[ "${FUZZ_RELEASE:-0}" == "1" ]]; then
    GPT_LOAD_ALLOW_NO_UI=1 cargo build --release --bin gpt-load
    BIN="$ROOT/target/release/gpt-load"
else
    cargo build --bin gpt-load
    BIN="$ROOT/target/debug/gpt-load"
fi

if [[ ! -x "$VENV/bin/st" ]] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
    || ! "$VENV/bin/python" -c 'import hypothesis, sys; sys.exit(hypothesis.__version_info__ >= (6, 131))' 2>/dev/null; then
    echo "fuzz-admin: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" "$HYPOTHESIS_SPEC"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpt-load-fuzz.XXXXXX")
KEEP_WORK=0
cleanup() {
    if [[ $KEEP_WORK == 0 ]]; then rm -rf "$WORK"; else echo "fuzz-admin: server log and report kept in $WORK"; fi
}
trap cleanup EXIT

POSITIVE=""
if [[ "${FUZZ_POSITIVE:-0}" == "1" ]]; then
    POSITIVE="--experimental=positive_data_acceptance --experimental-positive-data-acceptance-allowed-statuses 2xx,404,409"
fi
export POSITIVE
export WORK BIN SEED MAX_EXAMPLES TIME_LIMIT MODES VENV ROOT CHECKS NEGATIVE_REFUSALS
set +e
if unshare -rn true 2>/dev/null; then
    export EXCLUDES=""
    unshare -rn "$0" --inner "$@"
    RC=$?
else
    echo "fuzz-admin: no network namespace available; leaving out the operations that reach upstreams" >&2
    export EXCLUDES="--exclude-operation-id validateGroup --exclude-operation-id testKeys"
    "$0" --inner "$@"
    RC=$?
fi
set -e
if [[ $RC -ne 0 ]]; then KEEP_WORK=1; fi
exit "$RC"

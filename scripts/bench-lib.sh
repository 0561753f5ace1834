# shellcheck shell=bash
# The start-up that scripts/bench.sh and scripts/ab.sh share, sourced by both: free ports, the mock
# upstream (plain, or behind TLS with a self-signed certificate), gpt-load instances with their
# bench groups, wrk's request script, and CPU ticks from /proc. The caller sets OUT (a scratch
# directory) before sourcing, and runs kill_started on exit.

PIDS=()
declare -A MOCK_PORTS GL_PORTS GL_PIDS
BENCH_AUTH=bench-admin-key-0123456789abcdef
BENCH_PROXY_KEY=sk-bench-proxy
TICK=$(getconf CLK_TCK)
# The roots gpt-load (SSL_CERT_FILE) and nginx (proxy_ssl_trusted_certificate) trust for the TLS
# mocks: each mock's self-signed certificate (start_tls_mocks).
TLS_CA="$OUT/tls-ca.pem"

# Stops every process started here, and nginx if it was.
kill_started() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$OUT/nginx.pid" ]; then kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true; fi
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# wait_for LOG — until LOG has a "listening on" line.
wait_for() {
  for _ in $(seq 1 200); do grep -q "listening on" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "${0##*/}: $1 did not start" >&2; cat "$1" >&2; exit 1
}

# start_mock NAME BINARY [ARG]... — a mock upstream on a free loopback port: MOCK_PORTS[NAME].
start_mock() {
  local name=$1 bin=$2; shift 2
  "$bin" "$@" >"$OUT/mock-$name.log" 2>&1 &
  PIDS+=($!)
  wait_for "$OUT/mock-$name.log"
  MOCK_PORTS[$name]=$(awk '/listening on/ {n = split($3, a, ":"); print a[n]; exit}' "$OUT/mock-$name.log")
}

# start_tls_mocks BINARY — the HTTPS lane's upstreams, each with a self-signed certificate for
# localhost and 127.0.0.1: "tls" offers h2 and http/1.1 by ALPN, "tls-h1" http/1.1 only. Their
# certificates go to $TLS_CA.
start_tls_mocks() {
  start_mock tls "$1" --tls "$OUT/tls-cert.pem" --alpn h2,http/1.1
  start_mock tls-h1 "$1" --tls "$OUT/tls-h1-cert.pem" --alpn http/1.1
  cat "$OUT/tls-cert.pem" "$OUT/tls-h1-cert.pem" >"$TLS_CA"
}

api() { curl -sf -H "Authorization: Bearer $BENCH_AUTH" -H 'Content-Type: application/json' "$@"; }

# start_gpt_load NAME BINARY [ENV=VALUE]... — a single-node gpt-load with its own SQLite file and
# request logging written as it goes: GL_PORTS[NAME], GL_PIDS[NAME]. Groups come with add_group.
start_gpt_load() {
  local name=$1 bin=$2; shift 2
  local port; port=$(free_port)
  env AUTH_KEY=$BENCH_AUTH DATABASE_DSN="$OUT/$name.db" HOST=127.0.0.1 PORT=$port LOG_LEVEL=warn \
    MAX_CONCURRENT_REQUESTS=100000 "$@" "$bin" >"$OUT/$name.log" 2>&1 &
  GL_PIDS[$name]=$!
  PIDS+=($!)
  GL_PORTS[$name]=$port
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "${0##*/}: $name did not start" >&2; cat "$OUT/$name.log" >&2; exit 1; }
  api -X PUT "http://127.0.0.1:$port/api/settings" -d '{"request_log_write_interval_minutes":0}' >/dev/null
}

# add_group NAME GROUP UPSTREAM_URL — an OpenAI group of 3 keys on UPSTREAM_URL in instance NAME,
# proxy key $BENCH_PROXY_KEY.
add_group() {
  local port=${GL_PORTS[$1]} gid
  gid=$(api -X POST "http://127.0.0.1:$port/api/groups" -d "{\"name\":\"$2\",\"channel_type\":\"openai\",\"test_model\":\"gpt-4o-mini\",\"upstreams\":[{\"url\":\"$3\",\"weight\":1}],\"proxy_keys\":\"$BENCH_PROXY_KEY\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["id"])')
  api -X POST "http://127.0.0.1:$port/api/keys/add-multiple" -d "{\"group_id\":$gid,\"keys_text\":\"sk-bench-1,sk-bench-2,sk-bench-3\"}" >/dev/null
}

# proxy_url NAME GROUP — the chat-completions URL of GROUP through instance NAME.
proxy_url() { echo "http://127.0.0.1:${GL_PORTS[$1]}/proxy/$2/v1/chat/completions"; }

# write_post_lua FILE BODY — wrk's script: POST BODY as JSON with the proxy key.
write_post_lua() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $BENCH_PROXY_KEY"
LUA
}

# proc_ticks AWK_EXPR PID... — the sum over the processes of /proc/PID/stat's fields ($14 user, $15 system).
proc_ticks() { local f=$1 t=0 p; shift; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk "{print $f}" "/proc/$p/stat"))); done; echo $t; }
cpu_ticks() { proc_ticks '$14+$15' "$@"; }
user_ticks() { proc_ticks '$14' "$@"; }

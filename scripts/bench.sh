#!/usr/bin/env bash
# Benchmark of the data plane (issue 3): a fast mock upstream, gpt-load (release build, SQLite,
# request logging on and written as it goes) and nginx as a plain reverse proxy (without and with
# its access log), all on loopback and sharing this machine's cores with the load generators.
# Reports, for direct / nginx / nginx+log / gpt-load: requests per second at 32 connections (wrk),
# proxy CPU time per request (and its user-space part), latency at a
# fixed 50 req/s (p50/p99), time to the first streamed event, and gpt-load's RSS while streaming a
# large response. Needs nginx and wrk (Debian packages). BENCH_SECONDS sets the run length (10).
# The HTTPS lane puts the mock behind TLS (a self-signed certificate; h2 and http/1.1 by ALPN, and
# an http/1.1-only twin) and compares gpt-load (trusting it through SSL_CERT_FILE) with nginx
# (proxy_ssl_verify on, session reuse, upstream keep-alive, its access log on).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "bench.sh: install nginx and wrk (apt-get install nginx wrk)" >&2; exit 2; }
# The benchmark needs no web UI: a release build refuses to embed none unless told so.
GPT_LOAD_ALLOW_NO_UI=1 cargo build --release --bin gpt-load --bin mock-upstream --bin loadgen --bin otlp-sink >&2
# Binaries go where cargo puts them (CARGO_TARGET_DIR keeps a benchmark's build apart).
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=$(mktemp -d /tmp/gpt-load-bench.XXXXXX)
. scripts/bench-lib.sh
trap kill_started EXIT

start_mock plain "$BIN/mock-upstream"
MOCK_PORT=${MOCK_PORTS[plain]}
# start_bench_gpt_load NAME [ENV=VALUE]... — a gpt-load instance with the group "bench" on the
# plain mock.
start_bench_gpt_load() {
  local name=$1; shift
  start_gpt_load "$name" "$BIN/gpt-load" "$@"
  add_group "$name" bench "http://127.0.0.1:$MOCK_PORT"
}
start_bench_gpt_load gpt-load
GL_PORT=${GL_PORTS[gpt-load]}
GL_PID=${GL_PIDS[gpt-load]}
# The native route on the same instance: "bench" serves gpt-4o-mini, called with an access key
# on /v1/chat/completions instead of the proxy key on /proxy/bench.
BENCH_GID=$(api "http://127.0.0.1:$GL_PORT/api/groups" | python3 -c 'import json,sys;print([g["id"] for g in json.load(sys.stdin)["data"] if g["name"]=="bench"][0])')
api -X PUT "http://127.0.0.1:$GL_PORT/api/groups/$BENCH_GID" -d '{"models":["gpt-4o-mini"]}' >/dev/null
ACCESS_KEY=$(api -X POST "http://127.0.0.1:$GL_PORT/api/access-keys" -d '{"name":"bench"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["data"]["key"])')
GL_PIDS[gpt-load+native]=$GL_PID

# The HTTPS lane: one instance trusting the TLS mocks' certificates, with "bench" on the mock
# that offers h2 (which gpt-load picks by ALPN, as with the vendors) and "bench-h1" on the
# http/1.1-only one.
start_tls_mocks "$BIN/mock-upstream"
TLS_PORT=${MOCK_PORTS[tls]}
start_gpt_load gpt-load+tls "$BIN/gpt-load" SSL_CERT_FILE="$TLS_CA"
add_group gpt-load+tls bench "https://127.0.0.1:$TLS_PORT"
add_group gpt-load+tls bench-h1 "https://127.0.0.1:${MOCK_PORTS[tls-h1]}"
GL_PIDS[gpt-load+tls-h1]=${GL_PIDS[gpt-load+tls]}

# Telemetry on, to an OTLP receiver that counts and discards, /metrics enabled too: metrics only
# (OTEL_TRACES_EXPORTER=none), and metrics plus every span (no sampling, the worst case).
"$BIN/otlp-sink" >"$OUT/otlp-sink.log" 2>&1 &
PIDS+=($!)
wait_for "$OUT/otlp-sink.log"
SINK=$(awk '/listening on/ {print $3; exit}' "$OUT/otlp-sink.log")
start_bench_gpt_load gpt-load+metrics METRICS_ENABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK" \
  OTEL_TRACES_EXPORTER=none OTEL_METRIC_EXPORT_INTERVAL=5000
start_bench_gpt_load gpt-load+otel METRICS_ENABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="http://$SINK" \
  OTEL_METRIC_EXPORT_INTERVAL=5000 OTEL_BSP_MAX_QUEUE_SIZE=65536 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096

# A cluster: a private Redis, a master on it and one IS_SLAVE worker (the benchmarked target).
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
GRPC=$(free_port)
start_bench_gpt_load master REDIS_DSN="redis://127.0.0.1:$REDIS_PORT/0" GRPC_PORT=$GRPC
W_PORT=$(free_port)
env AUTH_KEY=$BENCH_AUTH IS_SLAVE=true MASTER_GRPC_URL="http://127.0.0.1:$GRPC" REDIS_DSN="redis://127.0.0.1:$REDIS_PORT/0" \
  HOST=127.0.0.1 PORT=$W_PORT LOG_LEVEL=warn MAX_CONCURRENT_REQUESTS=100000 "$BIN/gpt-load" >"$OUT/worker.log" 2>&1 &
GL_PIDS[worker]=$!
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -sf -o /dev/null -H 'authorization: Bearer sk-bench-proxy' -H 'content-type: application/json' \
    --data "{\"model\":\"m\",\"messages\":[]}" "http://127.0.0.1:$W_PORT/proxy/bench/v1/chat/completions" && break
  sleep 0.1
done
# Redis commands by name (from INFO commandstats) as "name calls" lines.
redis_cmds() { redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\).*/\1 \2/p' | sort; }

NGX_PORT=$(free_port)
NGX_LOG_PORT=$(free_port)
NGX_TLS_PORT=$(free_port)
# Three servers on the same workers: "nginx" without an access log (the strict comparison) and
# "nginx+log" with its default one (a line per request to a file, as Debian's nginx.conf has it):
# gpt-load writes a log row per request, so this is the like-for-like one. "nginx+tls" is
# "nginx+log" to the TLS mock: HTTP/1.1 (nginx's proxy speaks no h2 upstream), the certificate
# verified against the mocks' own (name "localhost"), sessions resumed, connections kept alive.
cat >"$OUT/nginx.conf" <<NGX
worker_processes auto;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
  server {
    listen 127.0.0.1:$NGX_LOG_PORT;
    access_log $OUT/nginx-access.log;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
  upstream mock_tls { server 127.0.0.1:$TLS_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX_TLS_PORT;
    access_log $OUT/nginx-tls-access.log;
    location / {
      proxy_pass https://mock_tls; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate $TLS_CA; proxy_ssl_name localhost;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on;
    }
  }
}
NGX
nginx -c "$OUT/nginx.conf" -p "$OUT" -e "$OUT/nginx-error.log"
sleep 0.3

BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
echo "$BODY" >"$OUT/body.json"
STREAM_BODY='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream"}]}'
echo "$STREAM_BODY" >"$OUT/stream.json"
write_post_lua "$OUT/post.lua" "$BODY"
sed "s/$BENCH_PROXY_KEY/$ACCESS_KEY/" "$OUT/post.lua" >"$OUT/native.lua"
# lua NAME — the wrk script of a target (the native route authenticates with the access key).
lua() { if [ "$1" = gpt-load+native ]; then echo "$OUT/native.lua"; else echo "$OUT/post.lua"; fi; }

nginx_pids() { pgrep -f "nginx.*$OUT/nginx.conf" | tr '\n' ' '; pgrep -P "$(cat "$OUT/nginx.pid")" | tr '\n' ' '; }

declare -A URL=(
  [direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
  [nginx]="http://127.0.0.1:$NGX_PORT/v1/chat/completions"
  [nginx+log]="http://127.0.0.1:$NGX_LOG_PORT/v1/chat/completions"
  [gpt-load]="http://127.0.0.1:$GL_PORT/proxy/bench/v1/chat/completions"
  [gpt-load+native]="http://127.0.0.1:$GL_PORT/v1/chat/completions"
  [gpt-load+metrics]="http://127.0.0.1:${GL_PORTS[gpt-load+metrics]}/proxy/bench/v1/chat/completions"
  [gpt-load+otel]="http://127.0.0.1:${GL_PORTS[gpt-load+otel]}/proxy/bench/v1/chat/completions"
  [worker]="http://127.0.0.1:$W_PORT/proxy/bench/v1/chat/completions"
  [direct+tls]="https://127.0.0.1:$TLS_PORT/v1/chat/completions"
  [nginx+tls]="http://127.0.0.1:$NGX_TLS_PORT/v1/chat/completions"
  [gpt-load+tls]=$(proxy_url gpt-load+tls bench)
  [gpt-load+tls-h1]=$(proxy_url gpt-load+tls bench-h1)
)
TARGETS=${BENCH_TARGETS:-"direct nginx nginx+log gpt-load gpt-load+native gpt-load+metrics gpt-load+otel worker direct+tls nginx+tls gpt-load+tls gpt-load+tls-h1"}
declare -A RPS CPU UCPU P50 P99 TTFB
for name in $TARGETS; do
  url=${URL[$name]}
  wrk -t2 -c"$CONNS" -d2s -s "$(lua "$name")" "$url" >/dev/null
  case $name in
    gpt-load*|worker) pids="${GL_PIDS[$name]}" ;;
    nginx*) pids=$(nginx_pids) ;;
    *) pids="" ;;
  esac
  [ "$name" = worker ] && redis_cmds >"$OUT/redis-before.txt"
  [ "$name" = worker ] && others_before=$(cpu_ticks "$REDIS_PID" "${GL_PIDS[master]}")
  before=$(cpu_ticks $pids)
  user_before=$(user_ticks $pids)
  wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$(lua "$name")" "$url" >"$OUT/wrk-$name.txt"
  after=$(cpu_ticks $pids)
  user_after=$(user_ticks $pids)
  reqs=$(awk '/requests in/ {print $1}' "$OUT/wrk-$name.txt")
  if [ "$name" = worker ]; then
    others_after=$(cpu_ticks "$REDIS_PID" "${GL_PIDS[master]}")
    CLUSTER_CPU=$(python3 -c "print(round(($others_after-$others_before)/$TICK/$reqs*1e6,1))")
    redis_cmds >"$OUT/redis-after.txt"
    # Commands per proxied request, by command (the master's own background calls included).
    REDIS_PER_REQ=$(join -a2 -e0 -o 0,1.2,2.2 "$OUT/redis-before.txt" "$OUT/redis-after.txt" \
      | awk -v n="$reqs" '{d=$3-$2; if (d>0) {t+=d; s=s sprintf("%s %.3f, ", $1, d/n)}} END {printf "%.3f (%s)", t/n, substr(s,1,length(s)-2)}')
  fi
  RPS[$name]=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-$name.txt")
  if grep -q "Non-2xx" "$OUT/wrk-$name.txt"; then echo "bench.sh: $name answered errors:" >&2; cat "$OUT/wrk-$name.txt" >&2; fi
  if [ -n "$pids" ]; then
    CPU[$name]=$(python3 -c "print(round(($after-$before)/$TICK/$reqs*1e6,1))")
    UCPU[$name]=$(python3 -c "print(round(($user_after-$user_before)/$TICK/$reqs*1e6,1))")
  else
    CPU[$name]="-"
    UCPU[$name]="-"
  fi
  sleep 1
  if [ "$name" = direct+tls ]; then
    # loadgen speaks plain HTTP only.
    P50[$name]="-"; P99[$name]="-"; TTFB[$name]="-"
    continue
  fi
  auth="Bearer $BENCH_PROXY_KEY"
  [ "$name" = gpt-load+native ] && auth="Bearer $ACCESS_KEY"
  r=$("$BIN/loadgen" rate "$url" 50 "$DUR" --header 'content-type: application/json' --header "authorization: $auth" --body "$OUT/body.json")
  P50[$name]=$(echo "$r" | python3 -c 'import json,sys;print(json.load(sys.stdin)["p50_us"])')
  P99[$name]=$(echo "$r" | python3 -c 'import json,sys;print(json.load(sys.stdin)["p99_us"])')
  t=$("$BIN/loadgen" ttfb "$url" 200 --header 'content-type: application/json' --header "authorization: $auth" --header 'x-mock-behavior: slow-stream=2,5' --body "$OUT/stream.json")
  TTFB[$name]=$(echo "$t" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["p50_us"])')
done

# Telemetry A/B: the three single-node variants interleaved, BENCH_AB_ROUNDS rounds of
# BENCH_AB_SECONDS each, proxy CPU per request; the median per variant (one run is too noisy on
# a shared 2-core machine to compare a few microseconds).
declare -A AB
if [ -n "${GL_PIDS[gpt-load+metrics]:-}" ] && [ -n "${GL_PIDS[gpt-load+otel]:-}" ]; then
  for _ in $(seq 1 "${BENCH_AB_ROUNDS:-5}"); do
    for name in gpt-load gpt-load+metrics gpt-load+otel; do
      b=$(cpu_ticks "${GL_PIDS[$name]}")
      wrk -t2 -c"$CONNS" -d"${BENCH_AB_SECONDS:-4}s" -s "$OUT/post.lua" "${URL[$name]}" >"$OUT/ab.txt"
      a=$(cpu_ticks "${GL_PIDS[$name]}")
      n=$(awk '/requests in/ {print $1}' "$OUT/ab.txt")
      AB[$name]="${AB[$name]:-} $(python3 -c "print(round(($a-$b)/$TICK/$n*1e6,1))")"
    done
  done
fi
median() { python3 -c "import statistics,sys;print(statistics.median(float(x) for x in sys.argv[1:]))" $1; }

# Native route vs /proxy/{group} on the same instance, interleaved the same way.
declare -A NAB
if [[ " $TARGETS " == *" gpt-load+native "* ]]; then
  for _ in $(seq 1 "${BENCH_AB_ROUNDS:-5}"); do
    for name in gpt-load gpt-load+native; do
      b=$(cpu_ticks "$GL_PID")
      wrk -t2 -c"$CONNS" -d"${BENCH_AB_SECONDS:-4}s" -s "$(lua "$name")" "${URL[$name]}" >"$OUT/ab.txt"
      a=$(cpu_ticks "$GL_PID")
      n=$(awk '/requests in/ {print $1}' "$OUT/ab.txt")
      NAB[$name]="${NAB[$name]:-} $(python3 -c "print(round(($a-$b)/$TICK/$n*1e6,1))")"
    done
  done
fi

# RSS of gpt-load while one client streams ~1 GiB through it.
rss() { awk '/VmRSS/ {print $2}' "/proc/$GL_PID/status"; }
RSS_START=$(rss)
curl -s -o /dev/null -H 'content-type: application/json' -H 'authorization: Bearer sk-bench-proxy' -H 'x-mock-behavior: large-stream=1073741824' \
  --data @"$OUT/stream.json" "${URL[gpt-load]}" &
CURL=$!
RSS_MAX=$RSS_START
while kill -0 $CURL 2>/dev/null; do r=$(rss); [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r; sleep 0.2; done
RSS_END=$(rss)

sleep 2
LOGGED=$(python3 -c "import sqlite3;print(sqlite3.connect('$OUT/gpt-load.db').execute('select count(*) from request_logs').fetchone()[0])")
SERVED=$(grep -h "requests in" "$OUT"/wrk-gpt-load.txt | awk '{print $1}')

pct() { python3 -c "print(round(100*$1/$2))"; }
us() { if [ "$1" = - ]; then echo "–"; else echo "$1 µs"; fi; }
{
  echo "## gpt-load benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${DUR}s runs, $CONNS connections"
  echo
  echo "| target | req/s (wrk, $CONNS conns) | proxy CPU µs/req | of which user space | p50 @50 req/s | p99 @50 req/s | first streamed byte (p50) |"
  echo "|---|---|---|---|---|---|---|"
  for name in $TARGETS; do
    echo "| $name | ${RPS[$name]} | ${CPU[$name]} | ${UCPU[$name]} | $(us "${P50[$name]}") | $(us "${P99[$name]}") | $(us "${TTFB[$name]}") |"
  done
  echo
  if [ -n "${RPS[nginx]:-}" ] && [ -n "${RPS[direct]:-}" ]; then
    echo "- gpt-load throughput vs nginx: $(pct "${RPS[gpt-load]}" "${RPS[nginx]}") %; CPU per request $(python3 -c "print(round(${CPU[gpt-load]}/${CPU[nginx]},2))")× nginx's"
    [ -n "${RPS[nginx+log]:-}" ] && echo "- vs nginx with its access log on: throughput $(pct "${RPS[gpt-load]}" "${RPS[nginx+log]}") %; CPU per request $(python3 -c "print(round(${CPU[gpt-load]}/${CPU[nginx+log]},2))")×"
    printf -- "- added latency vs direct at 50 req/s: p50 %+d µs, p99 %+d µs\n" $(( ${P50[gpt-load]} - ${P50[direct]} )) $(( ${P99[gpt-load]} - ${P99[direct]} ))
    printf -- "- added time to first streamed byte vs direct: %+d µs\n" $(( ${TTFB[gpt-load]} - ${TTFB[direct]} ))
  fi
  if [ -n "${AB[gpt-load]:-}" ]; then
    echo "- telemetry A/B, proxy CPU µs/req, median of ${BENCH_AB_ROUNDS:-5} interleaved rounds: off $(median "${AB[gpt-load]}") (${AB[gpt-load]# }), OTLP metrics + /metrics $(median "${AB[gpt-load+metrics]}") (${AB[gpt-load+metrics]# }), metrics + every span $(median "${AB[gpt-load+otel]}") (${AB[gpt-load+otel]# })"
  fi
  if [ -n "${NAB[gpt-load+native]:-}" ]; then
    echo "- native route (access key, routed by model) vs /proxy/bench (proxy key), proxy CPU µs/req, median of ${BENCH_AB_ROUNDS:-5} interleaved rounds: /proxy $(median "${NAB[gpt-load]}") (${NAB[gpt-load]# }), native $(median "${NAB[gpt-load+native]}") (${NAB[gpt-load+native]# }); ratio $(python3 -c "print(round($(median "${NAB[gpt-load+native]}")/$(median "${NAB[gpt-load]}"),2))")×"
  fi
  [ -n "${RPS[gpt-load+metrics]:-}" ] && echo "- telemetry: OTLP metrics + /metrics vs off: CPU ${CPU[gpt-load+metrics]} vs ${CPU[gpt-load]} µs/req, throughput $(pct "${RPS[gpt-load+metrics]}" "${RPS[gpt-load]}") %"
  [ -n "${RPS[gpt-load+otel]:-}" ] && echo "- telemetry: OTLP metrics + every span exported (unsampled) vs off: CPU ${CPU[gpt-load+otel]} vs ${CPU[gpt-load]} µs/req, throughput $(pct "${RPS[gpt-load+otel]}" "${RPS[gpt-load]}") %, p50 @50 req/s $(printf %+d $(( ${P50[gpt-load+otel]} - ${P50[gpt-load]} ))) µs; spans received by the sink: $(awk '/^spans/ {n=$2} END {print n}' "$OUT/otlp-sink.log")"
  for name in gpt-load+tls gpt-load+tls-h1; do
    [ -n "${RPS[$name]:-}" ] && [ -n "${RPS[nginx+tls]:-}" ] && echo "- HTTPS upstream, $name ($([ "$name" = gpt-load+tls ] && echo "h2 by ALPN" || echo "HTTP/1.1")) vs nginx+tls (HTTP/1.1, access log on): throughput $(pct "${RPS[$name]}" "${RPS[nginx+tls]}") %; CPU per request $(python3 -c "print(round(${CPU[$name]}/${CPU[nginx+tls]},2))")×"
  done
  [ -n "${RPS[worker]:-}" ] && echo "- worker on Redis vs single node: $(pct "${RPS[worker]}" "${RPS[gpt-load]}") % of the requests/s; Redis + master CPU ${CLUSTER_CPU} µs/req on top of the worker's; Redis commands per proxied request (those inside the selection script included): $REDIS_PER_REQ"
  echo "- gpt-load RSS while streaming 1 GiB: start ${RSS_START} KiB, max ${RSS_MAX} KiB, end ${RSS_END} KiB"
  echo "- request-log rows written during the run: $LOGGED (wrk alone sent $SERVED through gpt-load, plus warm-up, latency and A/B runs)"
} | tee "$OUT/report.md"
echo "(raw outputs in $OUT)" >&2

#!/usr/bin/env bash
# Gateway benchmark: the simulated upstream (tests/Latchkey.UpstreamSim) reached directly, through a real
# `latchkey serve`, through Debian's nginx with proxy_pass, and through the floor proxy
# (bench/Latchkey.Bench.FloorProxy: the same Kestrel + HttpClient pieces doing nothing but forward, to tell what
# Latchkey costs from what the platform costs), in one run with alternating rounds. wrk (Debian)
# is the load generator; Latchkey.Bench measures the time to the first Server-Sent Event. Prints Markdown for
# docs/benchmarks.md. Not a test: it never fails on a number.
# Usage: bench/gateway.sh [--seconds S] [--rounds N] [--sse-rounds N] [--warmup S] [--also LABEL=COMMAND]... [--key-options ARGS]
# --warmup: seconds of load on each proxy before anything is measured (default 20), so the gateway is measured
# on tier-1 JIT code, not while it is still compiling (see docs/benchmarks.md).
# --also LABEL=COMMAND: one more gateway, measured as another column in the same alternating rounds: COMMAND is a
# latchkey executable, optionally preceded by environment settings (`yarp=env LATCHKEY_X=1 /tmp/other/latchkey`).
# It serves its own fresh home with the same credential. Repeatable.
# --key-options "ARGS": more options for `keys create` of the gateway under test (not the --also ones), e.g. limits
# high enough never to refuse (`--rate 100000000/min --concurrent 10000`), so their checks run on every request.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5 rounds=3 sse_rounds=300 warmup=20 key_options=
also=()
usage="usage: bench/gateway.sh [--seconds S] [--rounds N] [--sse-rounds N] [--warmup S] [--also LABEL=COMMAND]... [--key-options ARGS]"
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --sse-rounds) sse_rounds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --key-options) key_options=$2; shift 2 ;;
    --also) [[ $2 =~ ^[a-z][a-z0-9-]*=.+ ]] || { echo "$usage" >&2; exit 2; }; also+=("$2"); shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt-get)"
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

log "building (Release): the simulated upstream, latchkey, the floor proxy, the benchmark client"
for project in tests/Latchkey.UpstreamSim src/Latchkey bench/Latchkey.Bench.FloorProxy bench/Latchkey.Bench; do
  dotnet build "$project" -c Release --nologo --verbosity quiet -clp:ErrorsOnly >&2
done
sim_exe=tests/Latchkey.UpstreamSim/bin/Release/net10.0/Latchkey.UpstreamSim
lk=src/Latchkey/bin/Release/net10.0/latchkey
bench=bench/Latchkey.Bench/bin/Release/net10.0/Latchkey.Bench
floor_exe=bench/Latchkey.Bench.FloorProxy/bin/Release/net10.0/floor-proxy

work=$(mktemp -d)
chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done  # nginx's master stops its workers on SIGTERM
  # The simulated upstream's host cancels SIGTERM (it stops serving but its Main keeps waiting): SIGKILL it.
  [ -z "${sim_pid:-}" ] || kill -9 "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits until FILE has a line matching REGEX and prints the first capture group (20 s at most).
wait_for() {
  local file=$1 regex=$2 i
  for i in $(seq 200); do
    if [ -s "$file" ] && grep -qE "$regex" "$file"; then
      sed -nE "s#.*$regex.*#\\1#p" "$file" | head -1
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for $regex in $file:" >&2; cat "$file" >&2; return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)); }

log "starting the simulated upstream"
"$sim_exe" --port 0 >"$work/sim.out" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
upstream=$(wait_for "$work/sim.out" '"url":"(http://[^"]+)"')

log "starting latchkey serve on a fresh home"
export LATCHKEY_HOME="$work/home"
secret="sk-ant-bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$secret" | "$lk" add bench --upstream "$upstream" --header x-api-key --format '{secret}' --extra-header 'anthropic-version: 2023-06-01' >/dev/null
# shellcheck disable=SC2086 # --key-options holds several words
key=$("$lk" keys create bench-key --credential bench $key_options 2>/dev/null | tail -1)
[ -n "$key" ] || { echo "keys create bench-key --credential bench $key_options failed" >&2; exit 1; }
"$lk" serve --listen 127.0.0.1:0 --no-socket >"$work/serve.out" 2>&1 &
lk_pid=$!
pids+=("$lk_pid")
gateway=$(wait_for "$work/serve.out" 'Latchkey gateway on (http://[0-9.:]+)')

declare -A url keyof pidof_
extras=()
for spec in "${also[@]}"; do
  label=${spec%%=*} command=${spec#*=}
  read -r -a cmd <<<"$command"
  log "starting $label: $command serve, on a fresh home"
  printf '%s\n' "$secret" | LATCHKEY_HOME="$work/home-$label" "${cmd[@]}" add bench --upstream "$upstream" --header x-api-key --format '{secret}' --extra-header 'anthropic-version: 2023-06-01' >/dev/null
  keyof[$label]=$(LATCHKEY_HOME="$work/home-$label" "${cmd[@]}" keys create bench-key --credential bench 2>/dev/null | tail -1)
  LATCHKEY_HOME="$work/home-$label" "${cmd[@]}" serve --listen 127.0.0.1:0 --no-socket >"$work/serve-$label.out" 2>&1 &
  pidof_[$label]=$!
  pids+=("$!")
  url[$label]="$(wait_for "$work/serve-$label.out" 'Latchkey gateway on (http://[0-9.:]+)')/c/bench/v1/messages"
  extras+=("$label")
done

log "starting the floor proxy (Kestrel + HttpClient, nothing else)"
printf 'x-api-key: %s\n' "$secret" | "$floor_exe" --listen 127.0.0.1:0 --upstream "$upstream" >"$work/floor.out" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
floor=$(wait_for "$work/floor.out" 'listening on (http://[0-9.:]+)')

log "starting nginx (proxy_pass, keepalive upstream, buffering off)"
nginx_port=$(free_port)
mkdir -p "$work/nginx-tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  upstream sim { server ${upstream#http://}; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-api-key "$secret";
      proxy_set_header anthropic-version "2023-06-01";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
"$nginx" -p "$work" -c "$work/nginx.conf" 2>"$work/nginx.out" &
nginx_pid=$!
pids+=("$nginx_pid")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" && break; sleep 0.1; done

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_KEY")
EOF

url[direct]="$upstream/v1/messages";               keyof[direct]=$secret
url[latchkey]="$gateway/c/bench/v1/messages";      keyof[latchkey]=$key
url[nginx]="http://127.0.0.1:$nginx_port/v1/messages"; keyof[nginx]=whatever
url[floor]="$floor/v1/messages";                   keyof[floor]=whatever
targets=(direct latchkey "${extras[@]}" nginx floor)

for t in "${targets[@]}"; do  # every path answers 200 before anything is measured
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url[$t]}" -H "x-api-key: ${keyof[$t]}" -H 'content-type: application/json' \
    -d '{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}')
  [ "$code" = 200 ] || { echo "$t answered $code" >&2; exit 1; }
done

rss() { awk -v f="$2" '$1 == f":" {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
sleep 2
idle_rss=$(rss "$lk_pid" VmRSS)
if ((warmup > 0)); then
  log "warming up: ${warmup} s of 32-connection load on each proxy before measuring"
  for t in latchkey "${extras[@]}" nginx floor; do
    BENCH_KEY=${keyof[$t]} wrk -t2 -c32 -d"${warmup}s" -s "$work/post.lua" "${url[$t]}" >/dev/null
  done
fi

# CPU time (clock ticks, user + system) used so far by the given processes.
cpu_ticks() { local total=0 p f; for p in "$@"; do read -r -a f <"/proc/$p/stat" && total=$((total + f[13] + f[14])); done; echo "$total"; }
proxy_pids() { case $1 in latchkey) echo "$lk_pid" ;; floor) echo "$floor_pid" ;; nginx) echo "$nginx_pid" $(pgrep -P "$nginx_pid") ;; direct) ;; *) echo "${pidof_[$1]}" ;; esac; }
hz=$(getconf CLK_TCK)

# One wrk run: prints "req/s p50_ms p99_ms requests errors".
run_wrk() {
  local t=$1 c=$2 threads=$(($2 < 2 ? 1 : 2))
  BENCH_KEY=${keyof[$t]} wrk -t"$threads" -c"$c" -d"${seconds}s" --latency -s "$work/post.lua" "${url[$t]}" 2>&1 | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err $0 " " }
    END { printf "%.0f %.3f %.3f %d %s\n", rps, p50, p99, n, (err == "" ? "-" : err) }'
}

log "load: ${rounds} rounds x (1, 32 connections) x (${targets[*]}), ${seconds} s each, order rotated every round"
results="$work/results"
: >"$results"
for ((r = 0; r < rounds; r++)); do
  for c in 1 32; do
    for ((i = 0; i < ${#targets[@]}; i++)); do
      t=${targets[$(((i + r) % ${#targets[@]}))]}
      procs=$(proxy_pids "$t")
      before=$(cpu_ticks $procs)
      read -r rps p50 p99 n err < <(run_wrk "$t" "$c")
      after=$(cpu_ticks $procs)
      cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", (n > 0 ? d / hz * 1e6 / n : 0)}')
      log "round $((r + 1)) $t c=$c: $rps req/s, p50 $p50 ms, p99 $p99 ms, proxy CPU $cpu us/request, errors: $err"
      echo "$t $c $rps $p50 $p99 $cpu $err" >>"$results"
    done
  done
done
load_rss=$(rss "$lk_pid" VmHWM)
after_rss=$(rss "$lk_pid" VmRSS)

log "time to first SSE event: $sse_rounds requests per target, alternating, one kept-alive connection each"
sse_targets=()
for t in "${targets[@]}"; do sse_targets+=(--target "$t=${url[$t]}|${keyof[$t]}"); done
"$bench" sse --rounds "$sse_rounds" "${sse_targets[@]}" >"$work/sse"

# Median of column COL for target T at C connections.
median() { awk -v t="$1" -v c="$2" -v col="$3" '$1 == t && $2 == c {print $col}' "$results" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
sse() { awk -v t="$1" -v col="$2" '$1 == t {print $col}' "$work/sse"; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

echo "## Gateway: direct vs Latchkey vs nginx (and the floor proxy)"
echo
echo "- $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)); load generator, proxies and upstream share them"
echo "- $(uname -sr); .NET SDK $(dotnet --version); $("$nginx" -v 2>&1 | sed 's#nginx version: ##'); $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo ' (with local changes)')"
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- each cell: the median of $rounds wrk runs of ${seconds} s (POST /v1/messages, non-streamed JSON answer); the order of the ${#targets[@]} targets rotates every round"
echo "- floor: bench/Latchkey.Bench.FloorProxy, Kestrel + HttpClient tuned as Latchkey's forwarder and nothing else (no key check, lookup, audit or diagnostics)"
echo
echo "| target | connections | requests/s | p50 ms | p99 ms | proxy CPU us/request |"
echo "|---|---:|---:|---:|---:|---:|"
for c in 1 32; do
  for t in "${targets[@]}"; do
    echo "| $t | $c | $(median "$t" "$c" 3) | $(median "$t" "$c" 4) | $(median "$t" "$c" 5) | $([ "$t" = direct ] && echo - || median "$t" "$c" 6) |"
  done
done
echo
for c in 1 32; do
  l=$(median latchkey "$c" 3) n=$(median nginx "$c" 3) d=$(median direct "$c" 3) f=$(median floor "$c" 3)
  echo "- $c connection(s): Latchkey throughput $(calc '%.2f' "$l / $n")x nginx's and $(calc '%.2f' "$l / $f")x the floor's; the floor $(calc '%.2f' "$f / $n")x nginx's ($(calc '%.2f' "$l / $d")x direct; nginx $(calc '%.2f' "$n / $d")x direct)"
done
dl=$(median direct 1 4) ll=$(median latchkey 1 4) nl=$(median nginx 1 4) fl=$(median floor 1 4)
echo "- added median latency at 1 connection: Latchkey $(calc '%.3f' "$ll - $dl") ms, nginx $(calc '%.3f' "$nl - $dl") ms, floor $(calc '%.3f' "$fl - $dl") ms"
echo "- time to first SSE event (median / p99 of $sse_rounds): direct $(sse direct 2) / $(sse direct 3) ms, Latchkey $(sse latchkey 2) / $(sse latchkey 3) ms, nginx $(sse nginx 2) / $(sse nginx 3) ms;" \
  "floor $(sse floor 2) / $(sse floor 3) ms; added by Latchkey $(calc '%.3f' "$(sse latchkey 2) - $(sse direct 2)") ms, by nginx $(calc '%.3f' "$(sse nginx 2) - $(sse direct 2)") ms, by the floor $(calc '%.3f' "$(sse floor 2) - $(sse direct 2)") ms"
echo "- Latchkey gateway resident memory: idle after start ${idle_rss} MiB; peak under load ${load_rss} MiB; after the load ${after_rss} MiB"
for c in 1 32; do
  echo "- proxy CPU per request at $c connection(s): Latchkey $(median latchkey "$c" 6) us, nginx $(median nginx "$c" 6) us, floor $(median floor "$c" 6) us (user + system time of the proxy's processes / requests served; less sensitive to machine load than requests/s)"
done
for t in "${extras[@]}"; do
  echo "- $t against latchkey: throughput $(calc '%.3f' "$(median "$t" 1 3) / $(median latchkey 1 3)")x at 1 connection, $(calc '%.3f' "$(median "$t" 32 3) / $(median latchkey 32 3)")x at 32;" \
    "p50 $(calc '%+.3f' "$(median "$t" 1 4) - $(median latchkey 1 4)") / $(calc '%+.3f' "$(median "$t" 32 4) - $(median latchkey 32 4)") ms, p99 $(calc '%+.3f' "$(median "$t" 1 5) - $(median latchkey 1 5)") / $(calc '%+.3f' "$(median "$t" 32 5) - $(median latchkey 32 5)") ms (1 / 32 connections);" \
    "proxy CPU $(median "$t" 1 6) / $(median "$t" 32 6) us per request (latchkey $(median latchkey 1 6) / $(median latchkey 32 6));" \
    "time to first SSE event $(sse "$t" 2) / $(sse "$t" 3) ms (latchkey $(sse latchkey 2) / $(sse latchkey 3))"
done
if awk 'NF > 7 || $7 != "-"' "$results" | grep -q .; then
  echo "- errors reported by wrk: $(awk 'NF > 7 || $7 != "-"' "$results" | tr '\n' ';')"
fi

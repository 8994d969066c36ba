#!/usr/bin/env bash
# Refresh-storm benchmark (not a test): N real `latchkey token NAME` processes start together on one expired
# grant held by a real authorization server (oidc-provider, single-use rotating refresh tokens with reuse
# detection). Reports the token-endpoint calls the server counted and the wall time until the last process
# exited, against one lone refresh (N = 1). Figures go to docs/benchmarks.md, "Refresh storm".
#
#   bench/refresh-storm.sh [--processes "1 8 32 64"] [--rounds 5]
#   bench/refresh-storm.sh --soak 60      # 8 processes calling `token` in a loop on 3 grants, AT lifetime 2 s
#
# Needs: .NET 10 SDK, Node.js >= 20 (npm ci --prefix tests/peers is run when node_modules is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

processes="1 8 32 64"
rounds=5
soak=0
while [ $# -gt 0 ]; do
  case "$1" in
    --processes) processes="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --soak) soak="$2"; shift 2 ;;
    *) echo "usage: $0 [--processes \"1 8 32 64\"] [--rounds 5] | --soak SECONDS" >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }
[ -d tests/peers/node_modules ] || npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error >/dev/null
log "building latchkey and the test browser (Release)"
dotnet build src/Latchkey/Latchkey.csproj -c Release --verbosity quiet -nologo -clp:ErrorsOnly >/dev/null
dotnet build tests/Latchkey.TestBrowser/Latchkey.TestBrowser.csproj -c Release --verbosity quiet -nologo -clp:ErrorsOnly >/dev/null
latchkey="$PWD/src/Latchkey/bin/Release/net10.0/latchkey"
browser="$PWD/tests/Latchkey.TestBrowser/bin/Release/net10.0/Latchkey.TestBrowser"

work=$(mktemp -d)
peer_pid=
cleanup() { [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);console.log(eval(process.argv[1]))})' "$1"; }
now_ms() { date +%s%3N; }

start_peer() { # env assignments as arguments
  rm -f "$work/peer.out"
  env "$@" node tests/peers/oidc/server.mjs >"$work/peer.out" 2>"$work/peer.err" &
  peer_pid=$!
  for _ in $(seq 1 200); do
    grep -q '"ready":true' "$work/peer.out" 2>/dev/null && break
    sleep 0.1
  done
  base=$(head -1 "$work/peer.out" | json 'v.base')
  resource=$(head -1 "$work/peer.out" | json 'v.resource')
}
stop_peer() { kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true; peer_pid=; }
faults() { curl -fsS -H 'content-type: application/json' -d "$1" "$base/__test/faults" >/dev/null; }
counters() { curl -fsS "$base/__test/counters"; }

lk() { LATCHKEY_HOME="$home" LATCHKEY_BROWSER="$browser {url}" "$latchkey" "$@"; }

if [ "$soak" -gt 0 ]; then
  home="$work/soak/home"
  start_peer AT_TTL=2
  for g in g0 g1 g2; do lk login "$g" --resource "$resource" >/dev/null 2>&1; done
  curl -fsS -X POST "$base/__test/counters/reset" >/dev/null
  log "soak: 8 processes x ${soak} s on 3 grants, access-token lifetime 2 s"
  start=$(now_ms)
  deadline=$((start + soak * 1000))
  workers=()
  for w in $(seq 0 7); do
    (
      i=$w calls=0 bad=0
      while [ "$(now_ms)" -lt "$deadline" ]; do
        lk token "g$((i % 3))" >/dev/null 2>>"$work/soak-errors" || bad=$((bad + 1))
        calls=$((calls + 1)) i=$((i + 1))
      done
      echo "$calls $bad" >"$work/soak-$w"
    ) &
    workers+=($!)
  done
  for p in "${workers[@]}"; do wait "$p"; done
  elapsed=$(( $(now_ms) - start ))
  calls=$(cat "$work"/soak-* | awk '{c+=$1; b+=$2} END {print c" "b}')
  c=$(counters)
  per_grant=$(echo "$c" | json 'Object.values(v.byGrant).join(", ")')
  echo "| seconds | token calls | failed calls | refreshes per grant | ideal (elapsed / 2 s) | invalid_grant |"
  echo "|---:|---:|---:|---|---:|---:|"
  echo "| $((elapsed / 1000)) | ${calls% *} | ${calls#* } | $per_grant | $((elapsed / 2000)) | $(echo "$c" | json 'v.refreshError') |"
  stop_peer
  exit 0
fi

echo "## Refresh storm: $(nproc) cores, oidc-provider $(node -p 'require("./tests/peers/node_modules/oidc-provider/package.json").version'), rotation with reuse detection, median of $rounds rounds"
echo
echo "| processes | token-endpoint calls (refresh) | invalid_grant | failed processes | wall ms (median) | wall ms (min-max) | vs lone refresh | same N, fresh token, ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
lone=
fresh=()
for n in $processes; do
  walls=() baseline=() calls_total=0 errors_total=0 failed_total=0
  for r in $(seq 1 "$rounds"); do
    home="$work/n$n-r$r/home"
    start_peer
    faults '{"atTtl":2}'
    lk login bench --resource "$resource" >/dev/null 2>"$work/login.err" || { cat "$work/login.err" >&2; exit 1; }
    sleep 2.2 # the access token has expired: every process must wait for the one refresh
    faults '{"atTtl":300}'
    curl -fsS -X POST "$base/__test/counters/reset" >/dev/null
    pids=()
    start=$(now_ms)
    for _ in $(seq 1 "$n"); do
      lk token bench >/dev/null 2>>"$work/storm-errors" &
      pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    walls+=($(( $(now_ms) - start )))
    c=$(counters)
    calls_total=$((calls_total + $(echo "$c" | json 'v.refreshRequests')))
    errors_total=$((errors_total + $(echo "$c" | json 'v.refreshError')))
    failed_total=$((failed_total + failed))
    if [ "$n" = 1 ]; then # the same process on a fresh token: start-up and a store read, no refresh
      start=$(now_ms); lk token bench >/dev/null; fresh+=($(( $(now_ms) - start )))
    fi
    # The same N processes again, now on a fresh token: what N process start-ups cost on this machine alone.
    pids=()
    start=$(now_ms)
    for _ in $(seq 1 "$n"); do lk token bench >/dev/null 2>>"$work/storm-errors" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || true; done
    baseline+=($(( $(now_ms) - start )))
    stop_peer
  done
  sorted=($(printf '%s\n' "${walls[@]}" | sort -n))
  median=${sorted[$(( ${#sorted[@]} / 2 ))]}
  [ -z "$lone" ] && lone=$median
  ratio=$(node -p "($median / $lone).toFixed(1)")
  base_sorted=($(printf '%s\n' "${baseline[@]}" | sort -n))
  echo "| $n | $(node -p "($calls_total / $rounds).toFixed(1)") per round | $errors_total | $failed_total | $median | ${sorted[0]}-${sorted[-1]} | ${ratio}x | ${base_sorted[$(( ${#base_sorted[@]} / 2 ))]} |"
done
if [ ${#fresh[@]} -gt 0 ]; then
  sorted=($(printf '%s\n' "${fresh[@]}" | sort -n))
  echo
  echo "One \`latchkey token\` on a fresh token (process start-up and a store read, no refresh): ${sorted[$(( ${#sorted[@]} / 2 ))]} ms median."
fi

#!/usr/bin/env bash
# Per-call latency of MCP tools/call (echo {"text":"ping"}) against the real test MCP server (tests/peers/mcp, which
# checks JWT access tokens from the real oidc-provider in tests/peers/oidc), five ways in the same run:
#   direct       the SDK's Streamable HTTP client straight to the server, with the bearer token from 'latchkey token'
#   proxy        the same client to the gateway's /mcp/NAME, with a Latchkey client key
#   bridge       the SDK's stdio client spawning 'latchkey mcp stdio NAME'
#   mcp-remote   the same stdio client spawning mcp-remote (the version pinned in bench/peers/package-lock.json)
#                with --header 'Authorization:${AUTH_HEADER}': mcp-remote reads the token from its environment
#                (AUTH_HEADER), so it is never in an argument list; it needs no sign-in of its own
#   mcp-remote-silent  the same with --silent: by default mcp-remote writes two lines to stderr per message, and
#                this leg shows what that costs (the added time is compared with both)
# One process (bench/mcp-latency.mjs) holds all five clients, initialized before anything is timed, and alternates
# the legs' order every round. Only the tools/call round trip is timed. "Added" is p50(leg) − p50(direct); the
# target (issue 5) is added(proxy) and added(bridge) ≤ 0.5 × added(mcp-remote). Not a test: it prints Markdown and
# never fails on a number.
#
# Usage: bench/mcp-latency.sh [CALLS_PER_LEG] [PER_ROUND]   (defaults 400 and 1: 400 rounds of one call per leg)
#        BENCH_COMPARE=LABEL=PATH adds two legs for another latchkey executable (an older build, to show a change
#        before and after in one run): its own home, sign-in and gateway, "proxy (LABEL)" and "bridge (LABEL)".
#        BENCH_KEEP=DIR also keeps result.json (every figure, with the 95 % intervals) and the stdio legs' stderr.
# Needs a Release build: dotnet build Latchkey.slnx -c Release. Installs tests/peers and bench/peers with npm ci
# when their node_modules are missing or differ from the lock file's versions.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-400}
per_round=${2:-1}
(( calls % per_round == 0 )) || { echo "CALLS_PER_LEG must be a multiple of PER_ROUND" >&2; exit 2; }
source bench/mcp-world.sh
"$lk" serve --listen 127.0.0.1:0 >"$root/gw.out" 2>&1 & pids+=($!)
gw=
for _ in $(seq 100); do gw=$(sed -n 's/^Latchkey gateway on \(http:[^ ]*\).*/\1/p' "$root/gw.out" | head -1); [[ -n "$gw" ]] && break; sleep 0.1; done
[[ -n "$gw" ]] || { echo "the gateway did not start" >&2; exit 1; }
# Secrets live in variables and reach the driver through its environment only.
key=$("$lk" keys create bench-key --credential bench 2>/dev/null)
token=$("$lk" token bench)
export BENCH_DIRECT_AUTH="Bearer $token" BENCH_PROXY_AUTH="Bearer $key"

# Another build to compare (BENCH_COMPARE=LABEL=PATH): the same steps in a home of its own.
compare_label= compare_lk= compare_gw= compare_key=
if [[ -n "${BENCH_COMPARE:-}" ]]; then
  compare_label=${BENCH_COMPARE%%=*} compare_lk=${BENCH_COMPARE#*=}
  [[ -x "$compare_lk" ]] || { echo "BENCH_COMPARE: $compare_lk is not an executable" >&2; exit 2; }
  LATCHKEY_HOME=$root/home-compare "$compare_lk" mcp add bench "$mcp_url" >/dev/null 2>&1
  LATCHKEY_HOME=$root/home-compare "$compare_lk" serve --listen 127.0.0.1:0 >"$root/gw-compare.out" 2>&1 & pids+=($!)
  for _ in $(seq 100); do compare_gw=$(sed -n 's/^Latchkey gateway on \(http:[^ ]*\).*/\1/p' "$root/gw-compare.out" | head -1); [[ -n "$compare_gw" ]] && break; sleep 0.1; done
  [[ -n "$compare_gw" ]] || { echo "the compared build's gateway did not start" >&2; exit 1; }
  compare_key=$(LATCHKEY_HOME=$root/home-compare "$compare_lk" keys create bench-key --credential bench 2>/dev/null)
  export BENCH_COMPARE_AUTH="Bearer $compare_key"
fi

mkdir -p "$root/logs"
# shellcheck disable=SC2016 # ${AUTH_HEADER} is for mcp-remote to expand from its environment, not for the shell
legs=$(node -e 'const [u, gw, lk, mr, v, cl, clk, cgw, home] = process.argv.slice(1); console.log(JSON.stringify([
  { name: "direct", label: "direct (bearer token)", http: u, auth: "BENCH_DIRECT_AUTH" },
  { name: "proxy", label: "Latchkey gateway /mcp/NAME", http: gw + "/mcp/bench", auth: "BENCH_PROXY_AUTH" },
  { name: "bridge", label: "Latchkey stdio bridge (latchkey mcp stdio)", stdio: [lk, "mcp", "stdio", "bench"] },
  { name: "mcp-remote", label: `mcp-remote ${v} (stdio, --header)`, stdio: [process.execPath, mr, u, "--header", "Authorization:${AUTH_HEADER}"], env: { AUTH_HEADER: "BENCH_DIRECT_AUTH" } },
  { name: "mcp-remote-silent", label: `mcp-remote ${v} --silent`, stdio: [process.execPath, mr, u, "--header", "Authorization:${AUTH_HEADER}", "--silent"], env: { AUTH_HEADER: "BENCH_DIRECT_AUTH" } },
  ...(cl ? [
    { name: "proxy-compare", label: `Latchkey gateway /mcp/NAME (${cl})`, http: cgw + "/mcp/bench", auth: "BENCH_COMPARE_AUTH" },
    { name: "bridge-compare", label: `Latchkey stdio bridge (${cl})`, stdio: ["/usr/bin/env", `LATCHKEY_HOME=${home}`, clk, "mcp", "stdio", "bench"] },
  ] : []),
]))' "$mcp_url" "$gw" "$lk" "$bench_peers/node_modules/mcp-remote/dist/proxy.js" "$mcp_remote_version" "$compare_label" "$compare_lk" "$compare_gw" "$root/home-compare")

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
PEERS=$peers LEGS=$legs ROUNDS=$((calls / per_round)) PER_ROUND=$per_round WARMUP=10 REFERENCE=mcp-remote,mcp-remote-silent LOGDIR=$root/logs \
  node bench/mcp-latency.mjs
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Nothing secret may have reached a log: the token and the client key are looked for in every file written.
leaked=$(grep -rlF -f <(printf '%s\n' "$token" "$key" ${compare_key:+"$compare_key"}) "$root/logs" "$root/gw.out" "$root/mcp.err" "$root/as.out" "$root/as.err" ${compare_gw:+"$root/gw-compare.out"} 2>/dev/null || true)
if [[ -n "$leaked" ]]; then echo "a secret appeared in: $leaked" >&2; exit 1; fi
# BENCH_KEEP=DIR keeps the figures (result.json) and the stdio legs' standard error (checked above).
if [[ -n "${BENCH_KEEP:-}" ]]; then mkdir -p "$BENCH_KEEP" && cp "$root"/logs/* "$BENCH_KEEP"/; fi

#!/usr/bin/env bash
# Per-call latency of an MCP tools/call (echo) against the real test MCP server (tests/peers/mcp), measured by the
# SDK's own client: directly (bearer token from 'latchkey token'), through the gateway's /mcp/NAME proxy, and
# through the stdio bridge. Not a test: it prints a Markdown table and never fails on a number.
# Usage: bench/mcp-latency.sh [CALLS]   (needs: dotnet build -c Release of src/Latchkey and tests/Latchkey.TestBrowser,
# and npm ci in tests/peers)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-200}
root=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$root"; }
trap cleanup EXIT
lk=$PWD/src/Latchkey/bin/Release/net10.0/latchkey
export LATCHKEY_HOME=$root/home
export LATCHKEY_BROWSER="$PWD/tests/Latchkey.TestBrowser/bin/Release/net10.0/Latchkey.TestBrowser {url}"
export LATCHKEY_TEST_BROWSER_LOG=$root/browser.log
peers=$PWD/tests/peers
first_line() { for _ in $(seq 100); do [[ -s "$1" ]] && { head -1 "$1"; return; }; sleep 0.1; done; echo "no ready line in $1" >&2; exit 1; }
field() { node -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))' "$1" "$2"; }

node "$peers/mcp/server.mjs" >"$root/mcp.out" 2>"$root/mcp.err" & pids+=($!)
mcp_ready=$(first_line "$root/mcp.out"); mcp_base=$(field "$mcp_ready" base); mcp_url=$(field "$mcp_ready" mcp)
RESOURCES="$mcp_url,$(field "$mcp_ready" sse)" node "$peers/oidc/server.mjs" >"$root/as.out" 2>"$root/as.err" & pids+=($!)
issuer=$(field "$(first_line "$root/as.out")" issuer)
curl -sf -X POST -H 'content-type: application/json' -d "{\"issuer\":\"$issuer\"}" "$mcp_base/__test/config" >/dev/null
"$lk" mcp add bench "$mcp_url" >/dev/null 2>&1
"$lk" serve --listen 127.0.0.1:0 >"$root/gw.out" 2>&1 & pids+=($!)
for _ in $(seq 100); do gw=$(sed -n 's/^Latchkey gateway on \(http:[^ ]*\).*/\1/p' "$root/gw.out" | head -1); [[ -n "$gw" ]] && break; sleep 0.1; done
key=$("$lk" keys create bench-key --credential bench 2>/dev/null)
token=$("$lk" token bench)

run() { MCP_CALLS='[]' MCP_BENCH=$calls node "$peers/mcp/client.mjs" "$@" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s.trim().split("\n").pop()).bench;console.log(`${b.medianMs.toFixed(2)} | ${b.p90Ms.toFixed(2)}`)})'; }
direct=$(MCP_AUTH="Bearer $token" run http "$mcp_url")
proxy=$(MCP_AUTH="Bearer $key" run http "$gw/mcp/bench")
bridge=$(run stdio "$lk" mcp stdio bench)
echo "| path ($calls sequential tools/call echo, after 5 warm-up) | median ms | p90 ms |"
echo "|---|---|---|"
echo "| direct (bearer token) | $direct |"
echo "| gateway /mcp/NAME | $proxy |"
echo "| stdio bridge (latchkey mcp stdio) | $bridge |"

#!/usr/bin/env bash
# Soak: SERVERS real MCP servers (tests/peers/mcp) behind one oidc-provider with 2-second access tokens, BRIDGES
# concurrent `latchkey mcp stdio` processes per server calling a tool every 100 ms for SECONDS. It prints, per server,
# the refreshes the authorization server made (one per expiry is the goal), refused refreshes (invalid_grant), and
# failed calls. Not a test: it never fails on a number.
# Usage: bench/mcp-soak.sh [SERVERS=3] [BRIDGES=6] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
servers=${1:-3} bridges=${2:-6} seconds=${3:-60}
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

resources=() bases=() urls=()
for i in $(seq "$servers"); do
  node "$peers/mcp/server.mjs" >"$root/mcp$i.out" 2>"$root/mcp$i.err" & pids+=($!)
  ready=$(first_line "$root/mcp$i.out")
  bases+=("$(field "$ready" base)"); urls+=("$(field "$ready" mcp)"); resources+=("$(field "$ready" mcp)")
done
RESOURCES=$(IFS=,; echo "${resources[*]}") AT_TTL=2 node "$peers/oidc/server.mjs" >"$root/as.out" 2>"$root/as.err" & pids+=($!)
as_ready=$(first_line "$root/as.out"); issuer=$(field "$as_ready" issuer); as_base=$(field "$as_ready" base)
for i in $(seq "$servers"); do
  curl -sf -X POST -H 'content-type: application/json' -d "{\"issuer\":\"$issuer\"}" "${bases[$((i-1))]}/__test/config" >/dev/null
  "$lk" mcp add "s$i" "${urls[$((i-1))]}" >/dev/null 2>&1
done
curl -sf -X POST "$as_base/__test/counters/reset" >/dev/null
start=$(date +%s.%N)
for i in $(seq "$servers"); do
  for b in $(seq "$bridges"); do
    MCP_CALLS='[]' MCP_SOAK_SECONDS=$seconds node "$peers/mcp/client.mjs" stdio "$lk" mcp stdio "s$i" >"$root/run-$i-$b.json" 2>/dev/null &
  done
done
wait $(jobs -p | grep -vxF -f <(printf '%s\n' "${pids[@]}")) 2>/dev/null || true
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
counters=$(curl -sf "$as_base/__test/counters")
echo "| servers x bridges | seconds | AT lifetime | refreshes (total) | expiries covered | refused refreshes | calls | failed calls |"
echo "|---|---|---|---|---|---|---|---|"
node -e '
const fs=require("fs"); const [dir,servers,bridges,secs,elapsed,counters]=process.argv.slice(1);
const c=JSON.parse(counters); let calls=0, failed=0; const errors={};
for (const f of fs.readdirSync(dir).filter(f=>f.startsWith("run-"))) {
  const line=fs.readFileSync(dir+"/"+f,"utf8").trim().split("\n").pop(); if(!line) continue;
  const s=JSON.parse(line).soak??{calls:0,failed:1,errors:{"no result":1}}; calls+=s.calls; failed+=s.failed;
  for (const [k,v] of Object.entries(s.errors)) errors[k]=(errors[k]??0)+v;
}
console.log(`| ${servers} x ${bridges} | ${(+elapsed).toFixed(0)} | 2 s | ${c.refresh} (${Object.values(c.byGrant).join(", ")} per grant) | ~${Math.round(+elapsed/2)} per server at most | ${c.refreshError} | ${calls} | ${failed} |`);
if (failed) console.error("errors:", JSON.stringify(errors));
' "$root" "$servers" "$bridges" "$seconds" "$elapsed" "$counters"

#!/usr/bin/env bash
# Soak: SERVERS real MCP servers (tests/peers/mcp) behind one oidc-provider with 2-second access tokens, BRIDGES
# concurrent `latchkey mcp stdio` processes per server calling a tool every 100 ms for SECONDS. It prints, per server,
# the refreshes the authorization server made (one per expiry is the goal), refused refreshes (invalid_grant), and
# failed calls, failed connects (a bridge whose initialize/tools/list failed) and the MCP servers' 401s with their
# reasons and how long past the token's exp each arrived. Not a test: it never fails on a number.
# Usage: bench/mcp-soak.sh [SERVERS=3] [BRIDGES=6] [SECONDS=60]; SOAK_KEEP=DIR keeps the logs (bridges' stderr) in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
servers=${1:-3} bridges=${2:-6} seconds=${3:-60}
root=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -n "${SOAK_KEEP:-}" ]] && cp -r "$root" "$SOAK_KEEP"; rm -rf "$root"; }
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
for b in "${bases[@]}"; do curl -sf -X POST "$b/__test/counters/reset" >/dev/null; done
start=$(date +%s.%N)
for i in $(seq "$servers"); do
  for b in $(seq "$bridges"); do
    MCP_CALLS='[]' MCP_SOAK_SECONDS=$seconds node "$peers/mcp/client.mjs" stdio "$lk" mcp stdio "s$i" >"$root/run-$i-$b.json" 2>"$root/bridge-$i-$b.err" &
  done
done
wait $(jobs -p | grep -vxF -f <(printf '%s\n' "${pids[@]}")) 2>/dev/null || true
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
counters=$(curl -sf "$as_base/__test/counters")
for i in $(seq "$servers"); do curl -sf "${bases[$((i-1))]}/__test/counters" >"$root/mcp$i.counters.json"; done
echo "| servers x bridges | seconds | AT lifetime | refreshes (per grant) | refused refreshes | failed connects | calls | failed calls | 401s from the MCP servers |"
echo "|---|---|---|---|---|---|---|---|---|"
node -e '
const fs=require("fs"); const [dir,servers,bridges,secs,elapsed,counters]=process.argv.slice(1);
const c=JSON.parse(counters); let calls=0, failed=0, noConnect=0; const errors={};
for (const f of fs.readdirSync(dir).filter(f=>f.startsWith("run-"))) {
  const line=fs.readFileSync(dir+"/"+f,"utf8").trim().split("\n").pop();
  const r=line ? JSON.parse(line) : {error:"no result"};
  if (!r.soak) { noConnect++; errors["connect: "+String(r.error).slice(0,160)]=(errors["connect: "+String(r.error).slice(0,160)]??0)+1; continue; }
  calls+=r.soak.calls; failed+=r.soak.failed;
  for (const [k,v] of Object.entries(r.soak.errors)) errors[k]=(errors[k]??0)+v;
}
const rejected=[]; for (let i=1;i<=+servers;i++) rejected.push(...JSON.parse(fs.readFileSync(`${dir}/mcp${i}.counters.json`,"utf8")).rejected);
const why={}; for (const r of rejected) why[r.code]=(why[r.code]??0)+1;
const late=rejected.filter(r=>r.pastExpMs!==null).map(r=>r.pastExpMs).sort((a,b)=>a-b);
const lateText=late.length ? `; past exp by ${late[0]}..${late[late.length-1]} ms` : "";
console.log(`| ${servers} x ${bridges}, ${secs} s | ${(+elapsed).toFixed(0)} | 2 s | ${c.refresh} (${Object.values(c.byGrant).join(", ")}) | ${c.refreshError} | ${noConnect} of ${servers*bridges} | ${calls} | ${failed} | ${rejected.length}${rejected.length ? " ("+JSON.stringify(why)+lateText+")" : ""} |`);
if (noConnect || failed) console.error("errors:", JSON.stringify(errors));
' "$root" "$servers" "$bridges" "$seconds" "$elapsed" "$counters"

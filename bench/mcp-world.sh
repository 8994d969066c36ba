# The world both MCP benchmarks run in (sourced by bench/mcp-latency.sh and bench/mcp-startup.sh from the clone's
# root): a temporary root folder cleaned up on exit, the real test MCP server (tests/peers/mcp) and authorization
# server (tests/peers/oidc, hour-long access tokens), the pinned mcp-remote (bench/peers), and the credential
# "bench" signed in by the Release build ($lk) in LATCHKEY_HOME=$root/home. Sets: root, pids (killed on exit), lk,
# peers, bench_peers, mcp_url, mcp_remote_version, and the helpers first_line and field.
umask 077
root=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$root"; }
trap cleanup EXIT
lk=$PWD/src/Latchkey/bin/Release/net10.0/latchkey
browser=$PWD/tests/Latchkey.TestBrowser/bin/Release/net10.0/Latchkey.TestBrowser
for f in "$lk" "$browser"; do [[ -x "$f" ]] || { echo "missing $f: run dotnet build Latchkey.slnx -c Release" >&2; exit 2; }; done
export LATCHKEY_HOME=$root/home
export LATCHKEY_BROWSER="$browser {url}"
export LATCHKEY_TEST_BROWSER_LOG=$root/browser.log
export MCP_REMOTE_CONFIG_DIR=$root/mcp-auth   # mcp-remote's own store, never ~/.mcp-auth
peers=$PWD/tests/peers
bench_peers=$PWD/bench/peers

# npm ci where node_modules does not hold the locked version of the package named (pinned, never global).
ensure() { # DIR PACKAGE
  local want have
  want=$(node -p "require('$1/package-lock.json').packages['node_modules/$2'].version")
  have=$(node -p "try { require('$1/node_modules/$2/package.json').version } catch { '' }")
  if [[ "$want" != "$have" ]]; then
    echo "npm ci in $1 ($2 $want)" >&2
    npm ci --prefix "$1" --ignore-scripts --no-audit --no-fund >&2
  fi
}
ensure "$peers" @modelcontextprotocol/sdk
ensure "$bench_peers" mcp-remote
mcp_remote_version=$(node -p "require('$bench_peers/node_modules/mcp-remote/package.json').version")

first_line() { for _ in $(seq 100); do [[ -s "$1" ]] && { head -1 "$1"; return; }; sleep 0.1; done; echo "no ready line in $1" >&2; exit 1; }
field() { node -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))' "$1" "$2"; }

node "$peers/mcp/server.mjs" >"$root/mcp.out" 2>"$root/mcp.err" & pids+=($!)
mcp_ready=$(first_line "$root/mcp.out"); mcp_base=$(field "$mcp_ready" base); mcp_url=$(field "$mcp_ready" mcp)
# Hour-long access tokens: no leg refreshes during the run (the direct and mcp-remote legs hold a fixed token).
AT_TTL=3600 RESOURCES="$mcp_url,$(field "$mcp_ready" sse)" node "$peers/oidc/server.mjs" >"$root/as.out" 2>"$root/as.err" & pids+=($!)
issuer=$(field "$(first_line "$root/as.out")" issuer)
curl -sf -X POST -H 'content-type: application/json' -d "{\"issuer\":\"$issuer\"}" "$mcp_base/__test/config" >/dev/null
"$lk" mcp add bench "$mcp_url" >/dev/null 2>&1

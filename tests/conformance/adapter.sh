#!/usr/bin/env bash
# The MCP conformance suite's client adapter (npx @modelcontextprotocol/conformance client --command ...): the suite
# starts its own authorization server and MCP server per scenario and appends the server URL as the last argument.
# Latchkey signs in with `latchkey mcp add` (the test browser follows the suite's auto-approving /authorize), then
# the SDK's own MCP client (tests/peers/mcp/client.mjs) talks to the server through `latchkey mcp stdio`. A step-up
# refusal is handled as a person would: `latchkey login NAME` (which asks for the recorded union), then once more.
#
# Needs: LATCHKEY_EXE, LATCHKEY_TEST_BROWSER_EXE (set by tests/Latchkey.Tests/Mcp/McpConformanceTests.cs).
set -uo pipefail
url="${!#}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
export LATCHKEY_HOME="$root/home"
export LATCHKEY_BROWSER="$LATCHKEY_TEST_BROWSER_EXE {url}"
export LATCHKEY_TEST_BROWSER_LOG="$root/browser.log"
lk="$LATCHKEY_EXE"
scenario="${MCP_CONFORMANCE_SCENARIO:-}"
context="${MCP_CONFORMANCE_CONTEXT:-}"
client_id=""
if [[ -n "$context" ]]; then
  client_id="$(node -e 'const c=JSON.parse(process.argv[1]);process.stdout.write(c.client_id??"")' "$context")"
fi
if [[ -n "$client_id" ]]; then
  node -e 'const c=JSON.parse(process.argv[1]);process.stdout.write((c.client_secret??"")+"\n")' "$context" \
    | "$lk" mcp add conf "$url" --client-id "$client_id" --client-secret-stdin >&2 || exit 1
elif [[ "$scenario" == auth/basic-cimd ]]; then
  # The suite's AS accepts this one Client ID Metadata Document URL (Latchkey uses CIMD only when told the URL).
  "$lk" mcp add conf "$url" --client-metadata-url https://conformance-test.local/client-metadata.json >&2 || exit 1
else
  "$lk" mcp add conf "$url" >&2 || exit 1
fi
run() { MCP_CALLS=all node "$here/../peers/mcp/client.mjs" stdio "$lk" mcp stdio conf; }
out="$(run)"
echo "$out" >&2
if [[ "$out" == *"latchkey login conf"* ]]; then
  "$lk" login conf >&2 || exit 1
  out="$(run)"
  echo "$out" >&2
fi
[[ "$out" == *'"ok":true'* ]]

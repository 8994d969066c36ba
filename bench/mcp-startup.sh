#!/usr/bin/env bash
# Start-up of an MCP stdio server, from spawn to the answer of the first tools/call (issue 19's target: the release
# build's `latchkey mcp stdio NAME` at most 0.5 × `npx mcp-remote` on the same server), side by side in one run:
#   release      `latchkey mcp stdio bench` from this machine's release archive (artifacts/release; built when missing)
#   clone        the same command from the Release build of the clone (JIT)
#   npx          `npx --no mcp-remote URL --header 'Authorization:${AUTH_HEADER}'` in bench/peers, as MCP client
#                configurations start it (npx resolves the pinned local copy; nothing is downloaded); the reference
#   node         mcp-remote started with node directly (what npx costs on top shows as the difference)
# Every leg talks to the same real MCP server (tests/peers/mcp) with a token from the same authorization server; the
# Latchkey legs share one home where `latchkey mcp add` signed in, and mcp-remote gets the bearer token through its
# environment (never an argument). The driver is bench/mcp-startup.mjs. Not a test: it prints Markdown and never
# fails on a number.
# Usage: bench/mcp-startup.sh [ROUNDS]   (default 30)   BENCH_KEEP=DIR keeps result.json and the legs' stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-30}
source bench/mcp-world.sh

case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64 | arm64) rid=linux-arm64 ;; *) echo "no release build for $(uname -m)" >&2; exit 1 ;; esac
archive=$(ls artifacts/release/latchkey-*-"$rid".tar.gz 2>/dev/null | tail -1 || true)
if [[ -z "$archive" ]]; then
  echo "no release archive for $rid: ./build.sh release $rid" >&2
  ./build.sh release "$rid" >&2
  archive=$(ls artifacts/release/latchkey-*-"$rid".tar.gz | tail -1)
fi
mkdir -p "$root/release"
tar -xzf "$archive" -C "$root/release"
release=$(ls "$root"/release/latchkey-*/latchkey)

token=$("$lk" token bench)
export BENCH_AUTH="Bearer $token"
mkdir -p "$root/logs"
# shellcheck disable=SC2016 # ${AUTH_HEADER} is for mcp-remote to expand from its environment, not for the shell
legs=$(node -e 'const [u, rel, lk, bp, v, rid] = process.argv.slice(1); const h = ["--header", "Authorization:${AUTH_HEADER}"]; console.log(JSON.stringify([
  { name: "release", label: `latchkey mcp stdio (release, ${rid})`, stdio: [rel, "mcp", "stdio", "bench"] },
  { name: "clone", label: "latchkey mcp stdio (Release build of the clone, JIT)", stdio: [lk, "mcp", "stdio", "bench"] },
  { name: "npx", label: `npx mcp-remote ${v}`, stdio: ["npx", "--no", "mcp-remote", u, ...h], cwd: bp, env: { AUTH_HEADER: "BENCH_AUTH" } },
  { name: "node", label: `node mcp-remote ${v} (no npx)`, stdio: [process.execPath, bp + "/node_modules/mcp-remote/dist/proxy.js", u, ...h], env: { AUTH_HEADER: "BENCH_AUTH" } },
]))' "$mcp_url" "$release" "$lk" "$bench_peers" "$mcp_remote_version" "$rid")

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
PEERS=$peers LEGS=$legs ROUNDS=$rounds WARMUP=2 REFERENCE=npx LOGDIR=$root/logs node bench/mcp-startup.mjs
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
leaked=$(grep -rlF -e "$token" "$root/logs" "$root/mcp.err" "$root/as.out" "$root/as.err" 2>/dev/null || true)
if [[ -n "$leaked" ]]; then echo "a secret appeared in: $leaked" >&2; exit 1; fi
if [[ -n "${BENCH_KEEP:-}" ]]; then mkdir -p "$BENCH_KEEP" && cp "$root"/logs/* "$BENCH_KEEP"/; fi

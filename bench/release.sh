#!/usr/bin/env bash
# The release build's start-up and memory, side by side in one run (docs/benchmarks.md#release-build):
#   - `latchkey token NAME` and `latchkey --version` from the release archive's executable, against a native
#     hello-world (C, compiled here with clang -O2: the ratios' reference) and the .NET hello-world;
#   - the idle gateway's resident memory (`latchkey serve`, 5 s after it is ready, no request yet, then after one).
# Uses artifacts/release/latchkey-*-RID.tar.gz (builds it with ./build.sh release RID when missing).
# Not a test: it never fails on a number. Prints Markdown.
# Usage: bench/release.sh [--rounds N] [--program LABEL=PATH [ARGS]]...
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=40 extra=()
while (($#)); do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --program) extra+=(--program "$2"); shift 2 ;;
    *) echo "usage: bench/release.sh [--rounds N] [--program LABEL=PATH [ARGS]]..." >&2; exit 2 ;;
  esac
done
log() { printf '==> %s\n' "$*" >&2; }

case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64 | arm64) rid=linux-arm64 ;; *) echo "no release build for $(uname -m)" >&2; exit 1 ;; esac
archive=$(ls artifacts/release/latchkey-*-"$rid".tar.gz 2>/dev/null | tail -1 || true)
if [ -z "$archive" ]; then
  log "no release archive for $rid: ./build.sh release $rid"
  ./build.sh release "$rid" >&2
  archive=$(ls artifacts/release/latchkey-*-"$rid".tar.gz | tail -1)
fi
work=$(mktemp -d)
gateway_pid=
cleanup() { [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
tar -xzf "$archive" -C "$work"
exe=$(ls "$work"/latchkey-*/latchkey)

log "building the yardsticks: hello-world in C (clang -O2) and in .NET; the benchmark driver"
printf '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n' >"$work/hello.c"
clang -O2 -o "$work/hello-c" "$work/hello.c"
for project in bench/Latchkey.Bench bench/Latchkey.Bench.Hello; do
  dotnet build "$project" -c Release --nologo --verbosity quiet -clp:ErrorsOnly >&2
done
# The same .NET hello-world compiled with Native AOT: the floor for any .NET executable (runtime and GC start-up).
dotnet publish bench/Latchkey.Bench.Hello -c Release -r "$rid" -p:PublishAot=true -o "$work/hello-aot" \
  --artifacts-path "$work/hello-aot-build" --nologo --verbosity quiet -clp:ErrorsOnly >&2
# For comparison, the clone's native token program (./latchkey builds it with clang), when it is there.
[ -x .build/latchkey/latchkey-token ] && extra+=(--program '`.build/latchkey/latchkey-token token NAME` (the clone'"'"'s native token program)=.build/latchkey/latchkey-token')

echo "## Machine"
echo
echo "- $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB memory"
echo "- $(uname -sr); .NET SDK $(dotnet --version); $($exe --version); archive $(basename "$archive") ($(stat -c %s "$archive") bytes; executable $(stat -c %s "$exe") bytes)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Start-up"
echo
log "start-up: $rounds rounds"
bench/Latchkey.Bench/bin/Release/net10.0/Latchkey.Bench startup --rounds "$rounds" \
  --hello "$work/hello-c" --hello-label 'hello world (C, clang -O2): the reference' \
  --yardstick 'hello world (.NET console, Native AOT)='"$work/hello-aot/hello" \
  --yardstick 'hello world (.NET console, JIT)=bench/Latchkey.Bench.Hello/bin/Release/net10.0/hello' \
  --program '`latchkey token NAME` (release, '"$rid"')='"$exe" \
  --program '`latchkey --version` (release, '"$rid"')='"$exe --version" \
  "${extra[@]}"
echo
echo "## Idle gateway memory"
echo
log "idle gateway memory"
home="$work/home"
LATCHKEY_HOME="$home" "$exe" add bench --upstream http://127.0.0.1:9 --header x-api-key --format '{secret}' <<<"sk-bench-secret" >/dev/null 2>&1
key=$(LATCHKEY_HOME="$home" "$exe" keys create bench-key --credential bench 2>/dev/null)
LATCHKEY_HOME="$home" "$exe" serve --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do grep -q '^Latchkey gateway on' "$work/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/^Latchkey gateway on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -1)
sleep 5
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$gateway_pid/status"; }
idle=$(rss)
# One request through it (the upstream is closed: a 502, but the whole forwarding path has run once).
curl -s -o /dev/null -H "x-api-key: $key" -X POST "$url/c/bench/v1/messages" -d '{}' || true
sleep 2
after=$(rss)
kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true
gateway_pid=
echo "| gateway | RSS idle, MiB | RSS after one request, MiB |"
echo "|---|---:|---:|"
echo "| \`latchkey serve\` (release, $rid) | $idle | $after |"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

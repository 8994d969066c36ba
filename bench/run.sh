#!/usr/bin/env bash
# Runs every Latchkey benchmark and prints Markdown for docs/benchmarks.md: the machine, then each section.
# Not a test: it never fails on a number.
# Usage: bench/run.sh [--seconds S] [--rounds N] [--processes 1,8,32] [--program LABEL=PATH ...]
# (each --program adds another executable to the start-up comparison, e.g. an older build)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=5 rounds=40 processes=1,8,32 extra=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --processes) processes=$2; shift 2 ;;
    --program) extra+=(--program "$2"); shift 2 ;;
    *) echo "usage: bench/run.sh [--seconds S] [--rounds N] [--processes 1,8,32] [--program LABEL=PATH ...]" >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }
log "building (Release): the benchmark, the hello-world yardstick, latchkey"
for project in bench/Latchkey.Bench bench/Latchkey.Bench.Hello src/Latchkey; do
  dotnet build "$project" -c Release --nologo --verbosity quiet -clp:ErrorsOnly >&2
done
./latchkey --version >/dev/null  # brings ./latchkey's ReadyToRun build up to date (.build/latchkey)
log "packing latchkey as a .NET tool and installing it into a temporary tool path"
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
dotnet pack src/Latchkey -c Release -o "$tools/packages" --nologo --verbosity quiet -clp:ErrorsOnly >&2
dotnet tool install latchkey --tool-path "$tools/bin" --add-source "$tools/packages" >/dev/null

bench=bench/Latchkey.Bench/bin/Release/net10.0/Latchkey.Bench
echo "## Machine"
echo
echo "- $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB memory"
echo "- $(uname -sr); .NET SDK $(dotnet --version); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo ' (with local changes)')"
echo "- store files in ${TMPDIR:-/tmp}, on $(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $2 " (" $1 ")"}')"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Store"
echo
log "store: $processes processes, ${seconds} s per run"
"$bench" store --processes "$processes" --seconds "$seconds"
echo
echo '## `latchkey token` start-up'
echo
log "start-up: $rounds rounds"
"$bench" startup --rounds "$rounds" \
  --hello bench/Latchkey.Bench.Hello/bin/Release/net10.0/hello \
  --program '`.build/latchkey/latchkey-token token` (Native AOT, what `./latchkey token` runs)=.build/latchkey/latchkey-token' \
  --program '`./latchkey token` (the script: staleness check, then exec of the native program)=./latchkey' \
  --program '`.build/latchkey/latchkey token` (the full tool, ReadyToRun)=.build/latchkey/latchkey' \
  --program '`latchkey token`, installed with `dotnet tool install` (JIT)='"$tools/bin/latchkey" \
  "${extra[@]}"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

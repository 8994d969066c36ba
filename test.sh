#!/usr/bin/env bash
# Runs Latchkey's whole test suite from a fresh clone: installs what the tests need, builds, runs every test,
# and ends with one line "tests: N passed, N failed, N skipped". Exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '==> %s\n' "$*" >&2; }

# System packages the tests use. Installed only when missing (CI machines are fresh; a developer's may not be).
# Each entry: a command that proves the package is there, and the Debian package that provides it.
# (none yet: the store tests need only .NET; the OAuth, PostgreSQL, sshd and browser tests add theirs here)
apt_needs=()
missing=()
for entry in "${apt_needs[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing ${missing[*]}: install them (e.g. sudo apt-get install -y ${missing[*]}) and run again"
    exit 1
  fi
fi

command -v dotnet >/dev/null 2>&1 || { log ".NET 10 SDK not found: install it from https://dot.net and run again"; exit 1; }

log "restoring NuGet packages"
dotnet restore Latchkey.slnx --verbosity quiet
log "building (Release)"
dotnet build Latchkey.slnx -c Release --no-restore --verbosity quiet -nologo -clp:ErrorsOnly
log "running tests"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
dotnet test Latchkey.slnx -c Release --no-build --verbosity quiet --logger "console;verbosity=normal" 2>&1 | tee "$out" | grep -E '^\s+(Failed|Skipped) |Passed!|Failed!|error' >&2
status=${PIPESTATUS[0]}
set -e
passed=0 failed=0 skipped=0
while read -r f p s; do
  failed=$((failed + f)) passed=$((passed + p)) skipped=$((skipped + s))
done < <(sed -nE 's/.*(Passed|Failed)! +- Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\2 \3 \4/p' "$out")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # the run failed before tests reported (a build or a crash): never report it as green
  grep -E 'error|Error' "$out" | head -20 >&2 || true
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$passed" -gt 0 ]

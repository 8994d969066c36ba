#!/usr/bin/env bash
# Runs Latchkey's whole test suite from a fresh clone: installs what the tests need, builds, runs every test,
# and ends with one line "tests: N passed, N failed, N skipped". Exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '==> %s\n' "$*" >&2; }

# System packages the tests use. Installed only when missing (CI machines are fresh; a developer's may not be).
# Each entry: a command (or a glob for a file, for tools Debian keeps off PATH) that proves the package is there,
# and the Debian package that provides it.
#   PostgreSQL: the store tests initdb a private server into a temp folder; Debian puts initdb and pg_ctl in
#   /usr/lib/postgresql/VERSION/bin, not on PATH.
#   The OAuth tests run a real authorization server (npm oidc-provider) under Node.js.
#   The ssh tests run a real OpenSSH server (a throwaway user and host key) and the system ssh client.
#   The dashboard tests drive Debian's Chromium through Playwright (never a downloaded browser).
#   The attack tests write and count the stores with the real sqlite3 and psql shells, as someone with the file would.
#   The socket attack test connects as another user with setpriv (util-linux).
apt_needs=("/usr/lib/postgresql/*/bin/initdb:postgresql" psql:postgresql-client sqlite3:sqlite3 node:nodejs npm:npm /usr/sbin/sshd:openssh-server ssh:openssh-client curl:curl chromium:chromium /usr/bin/setpriv:util-linux)
#   latchkey service's unit is checked by systemd's own systemd-analyze verify; the completion scripts run in zsh and fish.
apt_needs+=(systemd-analyze:systemd zsh:zsh fish:fish)
#   The keychain tests run a real gnome-keyring-daemon on a private D-Bus session bus (dbus-daemon), and check
#   its items from outside with secret-tool (libsecret-tools).
apt_needs+=(dbus-daemon:dbus-daemon dbus-send:dbus-bin gnome-keyring-daemon:gnome-keyring secret-tool:libsecret-tools)
#   Native AOT (the native 'latchkey token' ./latchkey builds, and ./build.sh release) links with clang and zlib.
apt_needs+=(clang:clang /usr/include/zlib.h:zlib1g-dev)
#   The metrics tests run a real Prometheus (Debian's) that scrapes a real gateway and is queried over its HTTP API.
apt_needs+=(prometheus:prometheus)
missing=()
have() {
  case "$1" in
    /*) compgen -G "$1" >/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
for entry in "${apt_needs[@]}"; do
  have "${entry%%:*}" || missing+=("${entry##*:}")
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

# The test peers (tests/peers: oidc-provider, express) from the committed lockfile, exactly.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  log "Node.js $(node --version) is too old for the test peers (oidc-provider 9 needs 20 or newer; 22 LTS recommended)"
  exit 1
fi
log "installing the test peers (npm ci)"
npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error >/dev/null

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 # Playwright uses /usr/bin/chromium; it must never fetch a browser
log "restoring NuGet packages"
dotnet restore Latchkey.slnx --verbosity quiet
log "building (Release)"
dotnet build Latchkey.slnx -c Release --no-restore --verbosity quiet -nologo -clp:ErrorsOnly
# The release test runs this machine's release archive with no .NET on PATH: build it from this tree first
# (Native AOT, about a minute and a half on two cores), so it never tests a stale archive.
case "$(uname -m)" in x86_64) host_rid=linux-x64 ;; aarch64) host_rid=linux-arm64 ;; *) host_rid= ;; esac
if [ -n "$host_rid" ] && [ "$(uname -s)" = Linux ]; then
  log "building the release archive for $host_rid (./build.sh release $host_rid)"
  ./build.sh release "$host_rid" >/dev/null
  export LATCHKEY_RELEASE_TEST=1
fi
log "running tests"
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
set +e
# Console: failures and skips as they happen, then each project's summary. Counting: the TRX files, not console text.
dotnet test Latchkey.slnx -c Release --no-build --verbosity quiet --results-directory "$results" \
  --logger trx --logger "console;verbosity=normal" 2>&1 \
  | tee "$results/console.log" \
  | awk '
      # Failures and skips with their message and the top of the stack trace; each project summary.
      /^[[:space:]]+(Passed|Failed|Skipped) [A-Za-z]/ { show = ($1 != "Passed"); lines = 0 }
      /^[[:space:]]+Stack Trace:/ { lines = 0; trace = 1 }
      /^Test Run|^Total tests|^[[:space:]]+(Passed|Failed|Skipped): / { print; show = 0; next }
      show && (!trace || lines++ < 6) { print }
      /^[[:space:]]+(Passed|Failed|Skipped) [A-Za-z]/ { trace = 0 }
    ' >&2
status=${PIPESTATUS[0]}
set -e
passed=0 failed=0 skipped=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  counters=$(grep -oE '<Counters [^>]*>' "$trx" | head -1)
  get() { sed -nE "s/.* $1=\"([0-9]+)\".*/\1/p" <<<"$counters"; }
  passed=$((passed + $(get passed))) failed=$((failed + $(get failed)))
  skipped=$((skipped + $(get total) - $(get executed)))  # a skipped test is counted in total, never executed
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # the run failed before tests reported (a build or a crash): never report it as green
  grep -iE 'error' "$results/console.log" | grep -vE '^\s+Passed ' | head -20 >&2 || true
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$passed" -gt 0 ]

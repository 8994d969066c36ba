#!/usr/bin/env bash
# Team-gateway soak (not part of the test suite): the suite's 3-replica test with 60 s of steady load instead of
# 10 s. Three real `latchkey serve --store postgresql://...` processes share one real PostgreSQL and one key file,
# serve an OAuth credential from the real oidc-provider (access tokens live 2 s) under six looping clients; then
# the replica holding the refresh lease is killed with SIGKILL while its refresh waits at the server, and
# PostgreSQL is restarted under the load. Prints the refreshes counted by the server, requests, failures (only
# 503 store_unavailable while PostgreSQL is down), and the slowest request around the kill.
#
#   bench/replicas-soak.sh [--seconds 60]
#
# Needs: .NET 10 SDK, Node.js >= 20, Debian's postgresql package (the test fixture runs initdb and pg_ctl).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "usage: $0 [--seconds 60]" >&2; exit 2 ;;
  esac
done

[ -d tests/peers/node_modules ] || npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error >/dev/null
LATCHKEY_REPLICA_STEADY_SECONDS="$seconds" dotnet test tests/Latchkey.Tests -c Release \
  --filter "FullyQualifiedName~ReplicasOnPostgresTests" --logger "console;verbosity=detailed" 2>&1 \
  | grep -E '^\s*(steady|[0-9]+ requests|around the kill|Passed|Failed|Total)' || true

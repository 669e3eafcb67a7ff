#!/usr/bin/env bash
# make demo: start a local influxd (unless one already answers on the port),
# run `tsrep demo` against it, and stop the influxd it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${TSREP_INFLUX_PORT:-8086}
started=0
if ! curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  scripts/influxd.sh start
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then scripts/influxd.sh stop; fi; }
trap cleanup EXIT
go build -o bin/tsrep ./cmd/tsrep
bin/tsrep demo --influx-url "http://127.0.0.1:$port" "$@"

#!/usr/bin/env bash
# Run a command with a local influxd: start one on 127.0.0.1:$TSREP_INFLUX_PORT
# (default 8086) unless one already answers there, run the command with
# TSREP_INFLUX_URL set, and stop the influxd this script started, unless
# --keep is given: then it keeps running (for queries after `make demo`),
# and the script says how to stop it.
#
#   scripts/with-influxd.sh [--keep] COMMAND [ARG...]
set -euo pipefail
keep=0
if [ "${1:-}" = "--keep" ]; then keep=1; shift; fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${TSREP_INFLUX_PORT:-8086}
started=0
if ! curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
  scripts/influxd.sh start
  started=1
fi
cleanup() {
  if [ "$started" != 1 ]; then return; fi
  if [ "$keep" = 1 ]; then
    echo "influxd keeps running on http://127.0.0.1:$port (log ${TSREP_INFLUX_DIR:-$root/.tools/influxdb}/influxd.log); stop it with: make influxd-stop" >&2
  else
    scripts/influxd.sh stop
  fi
}
trap cleanup EXIT
export TSREP_INFLUX_URL="http://127.0.0.1:$port"
# The server's process id, when it is the one scripts/influxd.sh manages
# (bench throughput reports its CPU time).
pidfile="${TSREP_INFLUX_DIR:-$root/.tools/influxdb}/influxd.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  TSREP_INFLUXD_PID=$(cat "$pidfile")
  export TSREP_INFLUXD_PID
fi
"$@"

#!/usr/bin/env bash
# Local InfluxDB 1.8.10 for development, the demo and tests.
#
#   scripts/influxd.sh install   build influxd into .tools/bin once (cached)
#   scripts/influxd.sh start     start it on loopback, wait for /health
#   scripts/influxd.sh stop      stop it
#   scripts/influxd.sh status    print whether it runs, and where
#
# Environment: TSREP_INFLUX_PORT (default 8086), TSREP_INFLUX_DIR (default
# .tools/influxdb under the project), TSREP_INFLUXD (the binary; default
# .tools/bin/influxd, which install builds). Data and the log live under
# TSREP_INFLUX_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TSREP_INFLUXD:-$root/.tools/bin/influxd}
port=${TSREP_INFLUX_PORT:-8086}
dir=${TSREP_INFLUX_DIR:-$root/.tools/influxdb}
pidfile="$dir/influxd.pid"

install() {
  if [ -x "$bin" ]; then return 0; fi
  local gobin
  gobin=$(dirname "$bin")
  echo "installing influxd v1.8.10 into $gobin (once; about a minute)" >&2
  mkdir -p "$gobin"
  GOBIN="$gobin" GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  install
  if running; then echo "influxd already running (pid $(cat "$pidfile"), port $port)" >&2; return 0; fi
  mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
  cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((port + 2))"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  nohup "$bin" -config "$dir/influxdb.conf" > "$dir/influxd.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      echo "influxd running on http://127.0.0.1:$port (pid $(cat "$pidfile"), log $dir/influxd.log)" >&2
      return 0
    fi
    if ! running; then echo "influxd exited; see $dir/influxd.log" >&2; tail -20 "$dir/influxd.log" >&2; return 1; fi
    sleep 0.2
  done
  echo "influxd did not answer /health within 30s; see $dir/influxd.log" >&2
  return 1
}

stop() {
  if running; then
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "influxd stopped" >&2
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") port $port"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac

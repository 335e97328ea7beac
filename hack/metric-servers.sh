#!/usr/bin/env bash
# Graphite (carbon-cache + graphite-web) and InfluxDB 1.x from Debian's packages, as plain
# processes on 127.0.0.1, for the e2e tests of the graphite and influxdb providers. The packages
# are fetched with `apt-get download` and unpacked into $FLEDGE_CACHE (never installed: no system
# service, no user, nothing under /etc or /var); Python's packages are Debian's too, run by
# /usr/bin/python3 with PYTHONPATH on the unpacked tree.
#
#   hack/metric-servers.sh up DIR     start both (or reuse healthy ones) with their state in DIR;
#                                     prints `export` lines (FLEDGE_GRAPHITE_URL,
#                                     FLEDGE_CARBON_ADDR, FLEDGE_INFLUXDB_URL)
#   hack/metric-servers.sh down DIR   stop what `up` started there and delete DIR
#
# hack/cluster.sh down stops the ones in its state dir ($FLEDGE_CLUSTER_DIR/metric-servers),
# where the e2e tests start them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

cmd=${1:-}; dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 up|down DIR" >&2; exit 2; }
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
dir=${dir%/}
timeout=${FLEDGE_CLUSTER_TIMEOUT:-120}
# Debian 12's: InfluxDB 1.6 (InfluxQL; Flux came with 1.7), graphite-web 1.1.8 on Django 3.2.
GRAPHITE_PACKAGES=(graphite-web graphite-carbon python3-whisper python3-django python3-django-tagging
  python3-cairocffi python3-cairo python3-cffi python3-cffi-backend python3-pycparser python3-ply
  python3-simplejson python3-tz python3-urllib3 python3-six python3-cachetools python3-twisted
  python3-asgiref python3-sqlparse python3-zope.interface python3-constantly python3-incremental
  python3-automat python3-hyperlink python3-attr python3-idna python3-typing-extensions)
GRAPHITE_ROOT=$FLEDGE_CACHE/graphite-deb
INFLUXDB_ROOT=$FLEDGE_CACHE/influxdb-deb

log() { echo "metric-servers: $*" >&2; }
die() { log "$*"; exit 1; }
ours() { [ -n "$1" ] && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$dir/"; }
pid_of() { cat "$dir/pids/$1.pid" 2>/dev/null || true; }

# apt-get download NAMES into a temporary dir, unpack every .deb into $1 (once).
unpack() {
  local root=$1; shift
  [ -e "$root/.complete" ] && return 0
  log "fetching Debian's $* (unpacked into $root, not installed) ..."
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download "$@" || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get download "$@"; }; }) >&2 ||
    { rm -rf "$tmp"; die "apt-get download $* failed"; }
  mkdir -p "$tmp/root"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  rm -rf "$root"; mkdir -p "$(dirname "$root")"
  mv "$tmp/root" "$root"; rm -rf "$tmp"
  touch "$root/.complete"
}

stop() {
  local name pid alive=() i
  for name in "$@"; do pid=$(pid_of "$name"); if ours "$pid"; then alive+=("$pid"); fi; done
  [ ${#alive[@]} -eq 0 ] && return 0
  kill -TERM "${alive[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    local still=(); for pid in "${alive[@]}"; do if ours "$pid"; then still+=("$pid"); fi; done
    [ ${#still[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

start() {
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pids/$name.pid" "$@" \
    >"$dir/logs/$name.log" 2>&1 </dev/null 9>&- &
  local i; for ((i = 0; i < 50; i++)); do [ -s "$dir/pids/$name.pid" ] && return 0; sleep 0.05; done
  die "could not start $name"
}

wait_for() {
  local what=$1 comp=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! ours "$(pid_of "$comp")"; then tail -n 30 "$dir/logs/$comp.log" >&2; die "$comp exited while waiting for $what"; fi
    ((SECONDS < deadline)) || { tail -n 30 "$dir/logs/$comp.log" >&2; die "timed out after ${timeout}s waiting for $what"; }
    sleep 0.2
  done
}

print_env() {
  source "$dir/ports.env"
  printf 'export FLEDGE_GRAPHITE_URL=%q\n' "http://127.0.0.1:$GRAPHITE_PORT"
  printf 'export FLEDGE_CARBON_ADDR=%q\n' "127.0.0.1:$CARBON_PORT"
  printf 'export FLEDGE_INFLUXDB_URL=%q\n' "http://127.0.0.1:$INFLUXDB_PORT"
}

healthy() {
  [ -f "$dir/ports.env" ] || return 1
  source "$dir/ports.env"
  local n; for n in carbon graphite-web influxdb; do ours "$(pid_of "$n")" || return 1; done
  curl -fsS --max-time 2 "http://127.0.0.1:$INFLUXDB_PORT/ping" >/dev/null 2>&1 &&
    curl -fsS --max-time 5 "http://127.0.0.1:$GRAPHITE_PORT/render?target=none&format=json" >/dev/null 2>&1
}

cmd_down() {
  [ -e "$dir" ] || return 0
  [ -e "$dir/.fledge-metric-servers" ] || [ -z "$(ls -A "$dir")" ] || die "$dir was not made by $0; not deleting it"
  stop graphite-web carbon influxdb
  rm -rf "$dir"
}

cmd_up() {
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"; flock 9
  if healthy; then print_env; return; fi
  cmd_down
  mkdir -p "$FLEDGE_CACHE"
  flock "$FLEDGE_CACHE/.build.lock" bash -c "$(declare -f unpack log die); unpack '$INFLUXDB_ROOT' influxdb"
  flock "$FLEDGE_CACHE/.build.lock" bash -c "$(declare -f unpack log die); unpack '$GRAPHITE_ROOT' ${GRAPHITE_PACKAGES[*]}"
  mkdir -p "$dir"/{pids,logs,graphite/whisper,graphite/conf,graphite/run,influxdb}
  touch "$dir/.fledge-metric-servers"
  trap 'rc=$?; if [ $rc -ne 0 ]; then stop graphite-web carbon influxdb; log "up failed; logs in $dir/logs"; fi' EXIT
  local ports; ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  read -r GRAPHITE_PORT CARBON_PORT CARBON_PICKLE_PORT CARBON_QUERY_PORT INFLUXDB_PORT INFLUXDB_RPC_PORT <<<"$ports"
  declare -p GRAPHITE_PORT CARBON_PORT CARBON_PICKLE_PORT CARBON_QUERY_PORT INFLUXDB_PORT INFLUXDB_RPC_PORT |
    sed 's/^declare -- //' >"$dir/ports.env"

  local g=$dir/graphite
  # One-second points kept a day: a test writes a point and reads it back within seconds.
  printf '[default]\npattern = .*\nretentions = 1s:1d\n' >"$g/conf/storage-schemas.conf"
  cat >"$g/conf/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $g/
LOCAL_DATA_DIR = $g/whisper/
CONF_DIR = $g/conf/
LOG_DIR = $g/run/
PID_DIR = $g/run/
DATABASE = whisper
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $CARBON_PORT
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $CARBON_PICKLE_PORT
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $CARBON_QUERY_PORT
ENABLE_TAGS = False
EOF
  # graphite-web reads its settings from GRAPHITE_SETTINGS_MODULE; carbonlink makes points still
  # in carbon's cache visible before they reach the whisper files.
  cat >"$g/conf/fledge_graphite_settings.py" <<EOF
SECRET_KEY = 'fledge-local-tests-only'
LOG_DIR = '$g/run'
STORAGE_DIR = '$g'
WHISPER_DIR = '$g/whisper'
INDEX_FILE = '$g/search_index'
DATABASES = {'default': {'NAME': '$g/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}
CARBONLINK_HOSTS = ['127.0.0.1:$CARBON_QUERY_PORT']
TAGDB = ''
USE_WORKER_POOL = False
EOF
  local py=(env PYTHONPATH="$GRAPHITE_ROOT/usr/lib/python3/dist-packages:$g/conf"
    GRAPHITE_SETTINGS_MODULE=fledge_graphite_settings DJANGO_SETTINGS_MODULE=graphite.settings /usr/bin/python3)
  start carbon "${py[@]}" "$GRAPHITE_ROOT/usr/bin/carbon-cache" --config="$g/conf/carbon.conf" --nodaemon start
  "${py[@]}" "$GRAPHITE_ROOT/usr/bin/django-admin" migrate --noinput >"$dir/logs/graphite-migrate.log" 2>&1 ||
    { tail -n 30 "$dir/logs/graphite-migrate.log" >&2; die "graphite-web's database could not be created"; }
  # --pythonpath repeats PYTHONPATH's settings dir on the command line, where `ours` finds $dir.
  start graphite-web "${py[@]}" "$GRAPHITE_ROOT/usr/bin/django-admin" runserver --noreload \
    --pythonpath="$g/conf" "127.0.0.1:$GRAPHITE_PORT"

  cat >"$dir/influxdb/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUXDB_RPC_PORT"
[meta]
  dir = "$dir/influxdb/meta"
[data]
  dir = "$dir/influxdb/data"
  wal-dir = "$dir/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUXDB_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
EOF
  start influxdb "$INFLUXDB_ROOT/usr/bin/influxd" -config "$dir/influxdb/influxdb.conf"

  wait_for "carbon's line receiver" carbon python3 -c "import socket; socket.create_connection(('127.0.0.1', $CARBON_PORT), 1)"
  wait_for "graphite-web /render" graphite-web curl -fsS --max-time 5 "http://127.0.0.1:$GRAPHITE_PORT/render?target=none&format=json"
  wait_for "influxdb /ping" influxdb curl -fsS "http://127.0.0.1:$INFLUXDB_PORT/ping"
  trap - EXIT
  log "graphite http://127.0.0.1:$GRAPHITE_PORT (carbon 127.0.0.1:$CARBON_PORT), influxdb http://127.0.0.1:$INFLUXDB_PORT"
  print_env
}

case $cmd in
  up) cmd_up ;;
  down) cmd_down ;;
  *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac

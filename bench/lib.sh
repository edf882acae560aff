# shellcheck shell=bash
# Shared pieces of the bench/ scripts (sourced, not run).
#
# Everything listens on loopback ports picked at run time; every process
# started through `spawn` is stopped by `cleanup`, which the scripts trap on
# EXIT, INT and TERM.  Work files live under $WORK (a fresh temp dir).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PY=/usr/bin/python3
TREATY_BIN=${TREATY_BIN:-$ROOT/treaty}
WORK=$(mktemp -d /tmp/treaty-bench.XXXXXX)
KEEP_WORK=${KEEP_WORK:-0}
PIDS=()
NAMES=()

# The fixed body every target returns (from the static backend).
BODY='{"id":1,"title":"bench","ok":true}'

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || die "$c not found: run scripts/install-deps"
    done
}

free_port() {
    "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port is up when the kernel lists it in LISTEN state: no connection is
# made, so the server under measurement (callgrind) sees nothing.
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' \
        /proc/net/tcp
}

# wait_listen PORT TIMEOUT_S PID: poll until PORT listens; fail if PID dies.
wait_listen() {
    local port=$1 timeout=$2 pid=$3 i=0 max
    max=$((timeout * 50))
    until listening "$port"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited before :$port"
        i=$((i + 1))
        ((i < max)) || die "nothing listens on :$port after ${timeout}s"
        sleep 0.02
    done
}

# spawn NAME CMD...: start in the background, output to $WORK/NAME.log.
spawn() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
    SPAWNED=$!
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Stop one spawned process by name and forget it; returns its exit status.
stop_named() {
    local want=$1 i rc=0
    for i in "${!NAMES[@]}"; do
        if [[ ${NAMES[$i]} == "$want" ]]; then
            kill -TERM "${PIDS[$i]}" 2>/dev/null || true
            wait "${PIDS[$i]}" 2>/dev/null || rc=$?
            unset 'PIDS[i]' 'NAMES[i]'
            return $rc
        fi
    done
}

cleanup() {
    local i
    trap - EXIT INT TERM
    for i in "${!PIDS[@]}"; do
        stop_pid "${PIDS[$i]}"
    done
    if [[ $KEEP_WORK == 1 ]]; then
        log "work files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}

on_signal() {
    log "interrupted: stopping what was started"
    cleanup
    exit 130
}

install_traps() {
    trap cleanup EXIT
    trap on_signal INT TERM
}

# ---- servers ---------------------------------------------------------------

nginx_common() {
    local dir=$1
    mkdir -p "$dir/tmp"
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
EOF
}

# start_backend: the static JSON backend every target proxies to (nginx,
# 1 worker, body from memory).  Sets BACKEND_PORT.
start_backend() {
    local dir=$WORK/backend
    BACKEND_PORT=$(free_port)
    mkdir -p "$dir"
    {
        nginx_common "$dir"
        cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_PORT reuseport;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    spawn backend nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_listen "$BACKEND_PORT" 10 "$SPAWNED"
}

# start_nginx_proxy: nginx, 1 worker, upstream keepalive 64.  NGINX_PORT.
start_nginx_proxy() {
    local dir=$WORK/nginx-proxy log_directive="access_log off;"
    NGINX_PORT=$(free_port)
    mkdir -p "$dir"
    if [[ ${BENCH_ACCESS_LOG:-0} == 1 ]]; then
        log_directive="access_log $dir/access.log combined buffer=64k flush=1s;"
    fi
    {
        nginx_common "$dir"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        $log_directive
        ${NGINX_HEADER_TIMEOUT:+client_header_timeout $NGINX_HEADER_TIMEOUT;}
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    spawn nginx-proxy nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_listen "$NGINX_PORT" 10 "$SPAWNED"
}

# start_haproxy: HAProxy, one thread, http-reuse always.  HAPROXY_PORT.
start_haproxy() {
    local dir=$WORK/haproxy
    HAPROXY_PORT=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend static

backend static
    server s1 127.0.0.1:$BACKEND_PORT
EOF
    spawn haproxy haproxy -db -f "$dir/haproxy.cfg"
    wait_listen "$HAPROXY_PORT" 10 "$SPAWNED"
}

# treaty_config OUT: bench/treaty-bench.yaml (or $TREATY_BENCH_CONFIG, a
# template with the same placeholders) with ports and paths filled.
# Sets TREATY_PORT and TREATY_ADMIN_PORT.
treaty_config() {
    local out=$1 access_log=""
    TREATY_PORT=$(free_port)
    TREATY_ADMIN_PORT=$(free_port)
    if [[ ${BENCH_ACCESS_LOG:-0} == 1 ]]; then
        access_log="access_log: \"$WORK/treaty-access.log\""
    fi
    sed -e "s|\${LISTEN}|127.0.0.1:$TREATY_PORT|" \
        -e "s|\${ADMIN}|127.0.0.1:$TREATY_ADMIN_PORT|" \
        -e "s|\${BACKEND}|127.0.0.1:$BACKEND_PORT|" \
        -e "s|\${STATE_DIR}|$WORK/treaty-state|" \
        -e "s|^# \${ACCESS_LOG}|$access_log|" \
        "${TREATY_BENCH_CONFIG:-$BENCH_DIR/treaty-bench.yaml}" >"$out"
}

# start_treaty [PREFIX...]: treaty serve on a fresh bench config, optionally
# under a wrapper command (valgrind).  Sets TREATY_PORT, TREATY_ADMIN_PORT
# and TREATY_PID; waits TREATY_START_TIMEOUT (15) seconds for the ports.
start_treaty() {
    [[ -x $TREATY_BIN ]] || die "$TREATY_BIN missing: run make"
    treaty_config "$WORK/treaty-bench.yaml"
    spawn treaty "$@" "$TREATY_BIN" serve -c "$WORK/treaty-bench.yaml" --dev
    # shellcheck disable=SC2034  # for the scripts that source this file
    TREATY_PID=$SPAWNED
    wait_listen "$TREATY_PORT" "${TREATY_START_TIMEOUT:-15}" "$SPAWNED"
    wait_listen "$TREATY_ADMIN_PORT" "${TREATY_START_TIMEOUT:-15}" "$SPAWNED"
}

# check_body PORT: one request through PORT must return the backend body.
check_body() {
    local got
    got=$(curl -sS --max-time 5 "http://127.0.0.1:$1/bench/check") ||
        die "no answer on :$1"
    [[ $got == "$BODY" ]] || die "unexpected body on :$1: $got"
}

#!/usr/bin/env bash
# Developer convenience for the benches (bench/discovery/propagation.ts reads its env file): `npm test`
# does not need it, its vitest global setup (test/setup/services.ts) starts its own services.
# Installs (apt) and starts the real registries the discovery tests use, on 127.0.0.1 high ports:
#   - dnsmasq (package dnsmasq-base) with a --hostsdir it re-reads by itself (inotify), fixed SRV
#     fixture records, and TTL 1 for local answers;
#   - etcd (package etcd-server) with its data dir under a temp dir.
# Writes the addresses to $MESHWORK_SERVICES_ENV (default /tmp/meshwork-services.env) as
# `export NAME=value` lines that both bash (`source`) and test/support/services.ts read:
#   MESHWORK_TEST_DNS=127.0.0.1:<port>            dnsmasq (UDP and TCP)
#   MESHWORK_TEST_DNS_HOSTSDIR=<dir>              hosts files dropped here are served within ~1 s
#   MESHWORK_TEST_ETCD=http://127.0.0.1:<port>    etcd client URL
#
# Usage: .ci/services.sh [start|stop]   (start is the default; start restarts what it started before)
# Only processes this script started (through its pid files) are ever stopped.
set -euo pipefail

STATE_DIR=${MESHWORK_SERVICES_DIR:-/tmp/meshwork-services}
ENV_FILE=${MESHWORK_SERVICES_ENV:-/tmp/meshwork-services.env}
ACTION=${1:-start}

log() { printf '[services] %s\n' "$*" >&2; }

stop_one() { # stop_one NAME: stops the process recorded in $STATE_DIR/NAME.pid, if it is still ours
  local pidfile="$STATE_DIR/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

if [[ $ACTION == stop ]]; then
  stop_one dnsmasq
  stop_one etcd
  rm -rf "$STATE_DIR"/run.*
  rm -f "$ENV_FILE"
  exit 0
fi
[[ $ACTION == start ]] || { echo "usage: $0 [start|stop]" >&2; exit 2; }

# ---- install (apt), only what is missing -------------------------------------------------------
dnsmasq_bin=$(command -v dnsmasq || true)
[[ -z $dnsmasq_bin && -x /usr/sbin/dnsmasq ]] && dnsmasq_bin=/usr/sbin/dnsmasq
etcd_bin=$(command -v etcd || true)
[[ -z $etcd_bin && -x /usr/bin/etcd ]] && etcd_bin=/usr/bin/etcd
missing=()
[[ -n $dnsmasq_bin ]] || missing+=(dnsmasq-base)
[[ -n $etcd_bin ]] || missing+=(etcd-server)
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt"
  SUDO=
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  # Keep the package's own service (etcd on the default ports) from starting during install.
  policy_created=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -n $policy_created ]] && $SUDO rm -f /usr/sbin/policy-rc.d
  dnsmasq_bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
  etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
fi

# ---- helpers ----------------------------------------------------------------------------------
port_in_use() { ss -Htanu 2>/dev/null | awk '{print $5}' | grep -E "[:.]$1\$" >/dev/null; }
free_port() { # a random free TCP+UDP port in 20000-59999
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}
wait_tcp() { # wait_tcp PORT PID SECONDS
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

mkdir -p "$STATE_DIR"
stop_one dnsmasq
stop_one etcd
rm -rf "$STATE_DIR"/run.* # data of earlier runs (their processes are stopped above)
RUN_DIR=$(mktemp -d "$STATE_DIR/run.XXXXXX")
chmod 755 "$STATE_DIR" "$RUN_DIR"

# ---- dnsmasq ----------------------------------------------------------------------------------
HOSTSDIR="$RUN_DIR/hosts.d"
CONFDIR="$RUN_DIR/dnsmasq.d"
mkdir -p "$HOSTSDIR" "$CONFDIR"
chmod 777 "$HOSTSDIR"
# SRV fixtures (SRV records cannot be reloaded at run time; their targets' addresses can, through
# the hostsdir). Fields: name,target,port,priority,weight. test/support/services.ts mirrors these.
cat >"$CONFDIR/meshwork-test.conf" <<'EOF'
local=/meshwork.test/
srv-host=_http._tcp.api.meshwork.test,api-1.meshwork.test,18081,10,60
srv-host=_http._tcp.api.meshwork.test,api-2.meshwork.test,18082,10,20
srv-host=_http._tcp.api.meshwork.test,api-3.meshwork.test,18083,20,100
srv-host=_http._tcp.bench.meshwork.test,bench-1.meshwork.test,18091,10,10
EOF
cat >"$HOSTSDIR/srv-targets" <<'EOF'
127.0.0.11 api-1.meshwork.test
127.0.0.12 api-2.meshwork.test
127.0.0.13 api-3.meshwork.test
127.0.0.21 bench-1.meshwork.test
EOF

dns_port=
for _ in 1 2 3; do
  port=$(free_port)
  setsid "$dnsmasq_bin" --keep-in-foreground --no-resolv --no-hosts --no-poll \
    --listen-address=127.0.0.1 --bind-interfaces --port="$port" \
    --user="$(id -un)" --group="$(id -gn)" \
    --hostsdir="$HOSTSDIR" --conf-dir="$CONFDIR" --local-ttl=1 \
    --pid-file= --log-facility="$RUN_DIR/dnsmasq.log" \
    </dev/null >>"$RUN_DIR/dnsmasq.out" 2>&1 &
  pid=$!
  echo "$pid" >"$STATE_DIR/dnsmasq.pid"
  if wait_tcp "$port" "$pid" 10; then dns_port=$port; break; fi
  log "dnsmasq did not start on $port:"; tail -5 "$RUN_DIR/dnsmasq.out" >&2 || true
  stop_one dnsmasq
done
[[ -n $dns_port ]] || { log "dnsmasq failed to start"; exit 1; }
log "dnsmasq pid $(cat "$STATE_DIR/dnsmasq.pid") on 127.0.0.1:$dns_port, hostsdir $HOSTSDIR"

# ---- etcd -------------------------------------------------------------------------------------
etcd_url=
for _ in 1 2 3; do
  cport=$(free_port)
  pport=$(free_port)
  [[ $cport != "$pport" ]] || continue
  rm -rf "$RUN_DIR/etcd-data"
  ETCD_UNSUPPORTED_ARCH=$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/') \
  setsid "$etcd_bin" --name meshwork-test --data-dir "$RUN_DIR/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "meshwork-test=http://127.0.0.1:$pport" --initial-cluster-state new \
    --log-level warn --logger zap \
    </dev/null >>"$RUN_DIR/etcd.out" 2>&1 &
  pid=$!
  echo "$pid" >"$STATE_DIR/etcd.pid"
  if wait_tcp "$cport" "$pid" 20; then
    for _ in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$cport/health" 2>/dev/null | grep -q '"health":"true"'; then
        etcd_url="http://127.0.0.1:$cport"
        break
      fi
      sleep 0.1
    done
    [[ -n $etcd_url ]] && break
  fi
  log "etcd did not start on $cport:"; tail -5 "$RUN_DIR/etcd.out" >&2 || true
  stop_one etcd
done
[[ -n $etcd_url ]] || { log "etcd failed to start"; exit 1; }
log "etcd pid $(cat "$STATE_DIR/etcd.pid") on $etcd_url"

cat >"$ENV_FILE" <<EOF
export MESHWORK_TEST_DNS=127.0.0.1:$dns_port
export MESHWORK_TEST_DNS_HOSTSDIR=$HOSTSDIR
export MESHWORK_TEST_ETCD=$etcd_url
EOF
log "wrote $ENV_FILE"
cat "$ENV_FILE"

#!/usr/bin/env bash
# A real end-to-end run of the built plugins, the way a container runtime drives them:
# a private lab of network namespaces, ADD of two containers, pings, CHECK, the leases, DEL, and a clean node.
# Usage: demo/demo.sh [PLUGIN_DIR]   (default: dist/fast, the layout `make install` installs). Needs root.
set -euo pipefail

PLUGINS=$(realpath "${1:-dist/fast}")
P="cnidemo$$"                       # every namespace of this lab starts with this
NODE="$P-node" UP="$P-upstream"
STORE=$(mktemp -d /tmp/cni-demo-store.XXXXXX)
CONF=$(mktemp /tmp/cni-demo-conf.XXXXXX.json)

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

ZYGOTE_PID=""
cleanup() {
    [ -z "$ZYGOTE_PID" ] || { kill "$ZYGOTE_PID" 2>/dev/null; wait "$ZYGOTE_PID" 2>/dev/null || true; }
    for ns in "$P-c3" "$P-c2" "$P-c1" "$UP" "$NODE"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$STORE" "$CONF"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
[ -x "$PLUGINS/macvlan" ] && [ -x "$PLUGINS/host-local" ] || { echo "demo: no plugins in $PLUGINS (make build)" >&2; exit 1; }

bold "A node with a parent interface, and an upstream router on the same wire"
run ip netns add "$NODE"
run ip netns add "$UP"
run ip -n "$NODE" link add eth0 type veth peer name uplink netns "$UP"
run ip -n "$NODE" link set eth0 up
run ip -n "$UP" link set uplink up
run ip -n "$UP" addr add 172.16.86.1/24 dev uplink
for c in c1 c2; do run ip netns add "$P-$c"; done

cat > "$CONF" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "pub_net",
  "type": "macvlan",
  "master": "eth0",
  "mode": "bridge",
  "ipam": {
    "type": "host-local",
    "ranges": [[{"subnet": "172.16.86.0/24", "gateway": "172.16.86.1"}]],
    "exclude": ["172.16.86.250"],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dataDir": "$STORE"
  }
}
JSON
bold "The network config (Docker's pub_net as a CNI config)"
cat "$CONF"; echo

# cni VERB CONTAINER [CONFIG]: one plugin exec, as libcni makes it, inside the node's namespace
cni() {
    CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/run/netns/$P-$2" CNI_IFNAME=eth0 CNI_PATH="$PLUGINS" \
        nsenter --net="/run/netns/$NODE" "$PLUGINS/macvlan" < "${3:-$CONF}"
}

declare -A RESULT
for c in c1 c2; do
    bold "ADD $c"
    printf '$ CNI_COMMAND=ADD CNI_CONTAINERID=%s CNI_NETNS=/run/netns/%s CNI_IFNAME=eth0 macvlan < conf\n' "$c" "$P-$c"
    RESULT[$c]=$(cni ADD "$c")
    echo "${RESULT[$c]}"; echo
done

bold "Inside c1"
run ip -n "$P-c1" -br addr show eth0
run ip -n "$P-c1" route

bold "Traffic: c1 -> c2, c1 -> gateway, c2 -> gateway"
ip1=$(ip -n "$P-c1" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ip2=$(ip -n "$P-c2" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
run ip netns exec "$P-c1" ping -c 2 -W 1 "$ip2"
run ip netns exec "$P-c1" ping -c 2 -W 1 172.16.86.1
run ip netns exec "$P-c2" ping -c 2 -W 1 172.16.86.1

bold "CHECK c1 (with the ADD result as prevResult, as libcni sends it)"
PREV=$(mktemp)
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["prevResult"]=json.loads(sys.argv[2]); print(json.dumps(c))' \
    "$CONF" "${RESULT[c1]}" > "$PREV"
cni CHECK c1 "$PREV" && echo "CHECK c1: ok (exit 0, no output)"
rm -f "$PREV"

bold "The leases (byte-compatible with the Go host-local)"
run ls -l "$STORE/pub_net"
for f in "$STORE"/pub_net/172.*; do printf '%s: %q\n' "$(basename "$f")" "$(cat "$f")"; done

TREE=$(dirname "$(realpath "$PLUGINS/macvlan")")
if [ -x "$TREE/cni-macvlan" ] && [ -d "$TREE/lib" ]; then
    bold "The zygote: both plugins kept loaded, a fork per exec (make install runs it as a service)"
    ZSOCK="$STORE/zygote.sock"
    printf '$ %s zygote --socket %s &\n' "$TREE/cni-macvlan" "$ZSOCK"
    "$TREE/cni-macvlan" zygote --socket "$ZSOCK" 2>/dev/null &
    ZYGOTE_PID=$!
    for _ in $(seq 100); do [ -S "$ZSOCK" ] && break; sleep 0.05; done
    run ip netns add "$P-c3"
    printf '$ CNI_MACVLAN_DEBUG=1 CNI_COMMAND=ADD CNI_CONTAINERID=c3 ... macvlan < conf\n'
    CNI_MACVLAN_ZYGOTE="$ZSOCK" CNI_MACVLAN_DEBUG=1 cni ADD c3 2>&1 >/dev/null | grep "run by the zygote"
    run ip -n "$P-c3" -br addr show eth0
    run ip netns exec "$P-c3" ping -c 2 -W 1 "$ip1"
    CNI_MACVLAN_ZYGOTE="$ZSOCK" cni DEL c3 && echo "DEL c3 (through the zygote): ok"
    kill "$ZYGOTE_PID"; wait "$ZYGOTE_PID" || true; ZYGOTE_PID=""
fi

bold "DEL both containers (and once more: DEL is idempotent)"
for c in c1 c2 c1; do cni DEL "$c" && echo "DEL $c: ok"; done

bold "The node is clean"
run ip -n "$P-c1" -br link
run ls "$STORE/pub_net"
printf '\nDemo finished: 2 containers attached, pinged each other and the gateway, checked, and detached; a third through the zygote.\n'

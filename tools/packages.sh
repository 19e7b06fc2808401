#!/bin/bash
# The one list of the Debian packages this project needs, by purpose, and the one place that installs them.
#
#   tools/packages.sh install PURPOSE...   install what PURPOSE needs and this machine lacks (as root, with apt)
#   tools/packages.sh missing PURPOSE...   print the missing packages, one a line (exit 0 either way)
#   tools/packages.sh list PURPOSE...      print every package PURPOSE needs, one a line
#
# Purposes: build, demo, release, test-host, test-vm, test (= build + release + test-host + test-vm).
# `make demo` and `make test` call `install` before they do anything else, so that on a new machine of this
# kind (Debian 12 with python3.11, gcc, make, git, iproute2, util-linux) the two commands are all the set-up.
# Nothing is printed when nothing is missing: a second run costs one dpkg-query (about 20 ms).
# Exit status: 0 done; 1 apt could not install a package (its last lines are shown); 2 not root, or usage.
set -euo pipefail

# purpose: packages. What each is for is said beside it; a package appears under every purpose that needs it.
declare -A PURPOSE=(
    # the venv on Debian's python3.11 and the launcher, linked on libpython3.11.a (build.spec, launcher/)
    [build]="make gcc python3.11 python3.11-dev python3.11-venv zlib1g-dev libexpat1-dev"
    # demo/demo.sh: namespaces, veth and macvlan links, nsenter, ping
    [demo]="iproute2 iputils-ping util-linux"
    # the host lane: the namespace lab (iproute2, ping, nsenter), the Go reference plugins in /usr/lib/cni,
    # real etcd members (some over TLS: openssl makes their certificates), podman's CNI backend with runc
    # and a busybox image built from busybox-static; the runtime tests: containerd (the daemon, its CRI,
    # ctr and the runc shim), golang-go to build cnitool from Debian's libcni source and
    # golang-github-gogo-protobuf-dev for the gogo.proto that the CRI's api.proto imports
    # (tools/runtime-clients.sh fetches both sources and builds them); the release's image run as
    # the DaemonSet runs it (podman, above)
    [test-host]="iproute2 iputils-ping util-linux containernetworking-plugins etcd-server openssl podman runc busybox-static containerd golang-go golang-github-gogo-protobuf-dev"
    # the VM lane (tools/run-in-vm.sh): QEMU, busybox and modprobe for virtme-ng's guest; the guest sees the
    # host's / read-only, so the lab's tools and the Go plugins come from the host too
    [test-vm]="qemu-system-x86 busybox-static kmod iproute2 iputils-ping util-linux containernetworking-plugins"
)
# make release: the build, then the OCI image built by podman from the release's files (tools/release.py)
PURPOSE[release]="${PURPOSE[build]} podman"
PURPOSE[test]="${PURPOSE[release]} ${PURPOSE[test-host]} ${PURPOSE[test-vm]}"

usage() { echo "usage: $0 install|missing|list PURPOSE... (purposes: ${!PURPOSE[*]})" >&2; exit 2; }
[ $# -ge 2 ] || usage
verb=$1; shift
wanted=()
for p in "$@"; do
    [ -n "${PURPOSE[$p]+x}" ] || usage
    read -ra pkgs <<<"${PURPOSE[$p]}"
    wanted+=("${pkgs[@]}")
done
mapfile -t wanted < <(printf '%s\n' "${wanted[@]}" | sort -u)

missing_packages() {
    # dpkg-query prints "ii " for an installed package; an unknown one is an error line, and missing too
    local pkg
    for pkg in "${wanted[@]}"; do
        [ "$(dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null)" = "ii " ] || echo "$pkg"
    done
}

case $verb in
    list) printf '%s\n' "${wanted[@]}"; exit 0 ;;
    missing) missing_packages; exit 0 ;;
    install) ;;
    *) usage ;;
esac

mapfile -t need < <(missing_packages)
[ ${#need[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
    echo "packages: $* needs Debian packages this machine lacks: ${need[*]}" >&2
    echo "packages: run as root, or first: sudo apt-get install --no-install-recommends ${need[*]}" >&2
    exit 2
fi
echo "packages: installing for $*: ${need[*]}" >&2
log=$(mktemp /tmp/cni-macvlan-apt.XXXXXX)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q --no-install-recommends "${need[@]}" >>"$log" 2>&1; }
# A package apt doesn't know yet (no or old package lists: a new machine) needs an update first.
if ! apt_install; then
    apt-get update -q >>"$log" 2>&1 || true
    if ! apt_install; then
        echo "packages: apt-get could not install: ${need[*]}; its last lines:" >&2
        tail -n 15 "$log" | sed 's/^/  /' >&2
        exit 1
    fi
fi
mapfile -t still < <(missing_packages)
if [ ${#still[@]} -gt 0 ]; then
    echo "packages: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi

#!/bin/bash
# Run a command in a small VM whose kernel has what this machine's kernel lacks (802.1Q VLAN, dummy):
# Debian's own kernel booted by virtme-ng under QEMU (software emulation: this machine's /dev/kvm can't
# run a stock kernel). The guest sees the host's "/" read-only, the project directory read-write.
# Nothing done in the guest touches the host's network stack.
#
#   tools/run-in-vm.sh [-C project] [-L read-only-dir]... [-t timeout-s] -- command...
#
# The project and each -L directory (say, the Python installation the project's venv points at) are
# shared again with 9p's cache=loose, which makes Python imports in the guest several times faster than
# through the uncached root; the host must not change them while the guest runs.
#
# Exit status: the command's; 124 on timeout; 125 when the guest ended without reporting one.
# First use installs what tools/packages.sh lists for test-vm (apt), virtme-ng (PyPI, in /opt/vng) and
# unpacks Debian's kernel package into /opt/vm-kernel (no kernel is installed on the host).
#
# Why not User-Mode Linux (the lighter recipe in shared/reference/vm-lane.md): on this machine's CPUs
# (AVX-512/AMX) every process of a UML guest dies with SIGSEGV, even a static busybox as init.
set -u
project=$PWD timeout_s=2400 loose=()
while getopts "C:L:t:" opt; do
    case $opt in
        C) project=$(cd "$OPTARG" && pwd) || exit 2 ;;
        L) loose+=("$(cd "$OPTARG" && pwd)") || exit 2 ;;
        t) timeout_s=$OPTARG ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [-C dir] [-t seconds] -- command..." >&2; exit 2; }

VNG=/opt/vng/bin/vng
KERNEL_DIR=/opt/vm-kernel   # not under /var/cache: the guest mounts a tmpfs there
export DEBIAN_FRONTEND=noninteractive
"$(dirname "$0")/packages.sh" install test-vm || exit 125
if [ ! -x $VNG ]; then
    echo "run-in-vm: installing virtme-ng in /opt/vng" >&2
    python3 -m venv /opt/vng && /opt/vng/bin/pip install -q virtme-ng==1.42 >/dev/null 2>&1 ||
        { echo "run-in-vm: cannot install virtme-ng" >&2; exit 125; }
fi
kernel=$(ls $KERNEL_DIR/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$kernel" ]; then
    echo "run-in-vm: unpacking Debian's kernel into $KERNEL_DIR" >&2
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || { apt-get update -qq >/dev/null 2>&1; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
    mkdir -p $KERNEL_DIR && (cd $KERNEL_DIR && apt-get download -q "$pkg" >/dev/null 2>&1 && dpkg-deb -x "${pkg}"_*.deb root) ||
        { echo "run-in-vm: cannot unpack the kernel package $pkg" >&2; exit 125; }
    kernel=$(ls $KERNEL_DIR/root/boot/vmlinuz-* | head -n 1)
fi

share=$(mktemp -d /tmp/vm-lane.XXXXXX)   # read-write in the guest: the command, its output and status
trap 'rm -rf "$share"' EXIT
printf '%q ' "$@" > "$share/command"
{
    printf 'export IN_TEST_VM=1 HOME=/root LANG=C.UTF-8 TERM=dumb PATH=%q\n' "$PATH"
    for var in CI PYTEST_ADDOPTS CNI_REQUIRE_ALL; do
        [ -n "${!var+x}" ] && printf 'export %s=%q\n' "$var" "${!var}"
    done
} > "$share/env"
qemu_opts="" mounts=""
n=0
for dir in "$project" "${loose[@]}"; do
    n=$((n + 1))
    ro=$([ "$dir" = "$project" ] && echo off || echo on)
    qemu_opts+=" -virtfs local,path=$dir,mount_tag=loose$n,security_model=none,readonly=$ro"
    mounts+="mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=512000 loose$n $(printf %q "$dir")"$'\n'
done
cat > "$share/run" <<GUEST
$mounts
modprobe -a ipv6 8021q dummy macvlan veth 2>/dev/null
mkdir -p /run/netns
ip link set lo up
cd $(printf %q "$project") && bash -c '. $share/env; . $share/command' > $share/output 2>&1
echo \$? > $share/status
GUEST

# The guest's console carries the kernel's messages: the command's output goes to a file instead, shown after.
PATH=/opt/vng/bin:$PATH timeout -k 10 "$timeout_s" $VNG --disable-kvm --force-9p --memory 2G --run "$kernel" \
    --rwdir="$project" --rwdir="$share" --qemu-opts="$qemu_opts" --exec "bash $share/run" </dev/null >"$share/console" 2>&1
status=$?
cat "$share/output" 2>/dev/null
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "run-in-vm: timed out after ${timeout_s}s" >&2
    exit 124
fi
if [ ! -s "$share/status" ]; then
    echo "run-in-vm: the guest ended ($status) without a result; its console:" >&2
    tail -n 30 "$share/console" >&2
    exit 125
fi
exit "$(cat "$share/status")"

#!/bin/sh
# install.sh: install the cni-macvlan release it sits in (unpacked from the tarball), or remove it.
#
#   ./install.sh [--prefix /opt/cni/bin] [--libdir /opt/cni-macvlan] [--layout fast|single]
#                [--zygote yes|no] [--unitdir DIR] [--destdir DIR] [--socket PATH] [--replace]
#   ./install.sh --uninstall [--libdir /opt/cni-macvlan] [--destdir DIR]
#
# Atomic: a runtime exec'ing a plugin while this runs gets the whole old build or the whole new one.
# The work is done by the release's own launcher (`cni-macvlan install`: the cni_install package in
# the sources), so this build shows it runs on this machine before anything is changed. It runs as
# root from this directory: the release must be unpacked where no one but its owner (root, or you)
# can change it, or someone else's code would run as root; that is checked first. Check the
# tarball against the release's SHA256SUMS before you unpack it. `--help` says more;
# docs/install.md tells the whole story.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
me=$(id -u) sudoer=${SUDO_UID:-$(id -u)}  # under sudo, a tree of the user who ran it is theirs to trust
# the release and every directory above it: yours or root's, writable by no one else (a sticky
# directory such as /tmp above it is fine)
d=$here
while :; do
    owner=$(stat -c %u -- "$d") mode=$(stat -c %a -- "$d")
    sticky=$(( 0$mode & 01000 )) others=$(( 0$mode & 022 ))
    if { [ "$owner" != 0 ] && [ "$owner" != "$me" ] && [ "$owner" != "$sudoer" ]; } || { [ "$others" != 0 ] && { [ "$d" = "$here" ] || [ "$sticky" = 0 ]; }; }; then
        echo "install.sh: $d can be changed by others (owner $owner, mode $mode): unpack the release where only you can write" >&2
        exit 1
    fi
    [ "$d" = / ] && break
    d=$(dirname -- "$d")
done
if find "$here" ! -user 0 ! -user "$me" ! -user "$sudoer" -print -quit | grep -q . ||
    find "$here" ! -type l -perm /022 -print -quit | grep -q .; then
    echo "install.sh: files in $here can be changed by others: unpack the release again, as root" >&2
    exit 1
fi
exec "$here/cni-macvlan/cni-macvlan" install "$@"

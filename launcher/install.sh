#!/bin/sh
# install.sh: install the cni-macvlan release it sits in (unpacked from the tarball), or remove it.
#
#   ./install.sh [--prefix /opt/cni/bin] [--libdir /opt/cni-macvlan] [--layout fast|single]
#                [--zygote yes|no] [--unitdir DIR] [--destdir DIR] [--socket PATH]
#   ./install.sh --uninstall [--libdir /opt/cni-macvlan] [--destdir DIR]
#
# Atomic: a runtime exec'ing a plugin while this runs gets the whole old build or the whole new one.
# The work is done by the release's own launcher (`cni-macvlan install`: launcher/_cni_install.py in
# the sources), so this build shows it runs on this machine before anything is changed. `--help`
# says more; docs/install.md tells the whole story.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
exec "$here/cni-macvlan/cni-macvlan" install "$@"

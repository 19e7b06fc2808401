#!/bin/bash
# The ecosystem's Go programs the tests and the benchmark run, built from the Go module proxy at the versions
# pinned in tools/versions.env, once, into OUTDIR:
#
#   tools/go-programs.sh OUTDIR PROGRAM...
#
#   upstream-plugins   OUTDIR/upstream-plugins-<UPSTREAM_PLUGINS>/bin/{macvlan,ipvlan,host-local,loopback,bridge,
#                      tuning}: containernetworking/plugins as its release workflow builds them (CGO off,
#                      -extldflags -static, the version stamped in), the reference peer of the interop tests and of make bench
#
# Each program is built with the machine's Go (/usr/local/go, GOTOOLCHAIN=local: no other toolchain is fetched)
# and module and build caches under OUTDIR/cache, so nothing outside OUTDIR changes. A program whose directory
# holds a complete build of its pinned version is left alone: a second run builds nothing and prints nothing.
# The first run prints one line per program and what it cost (the module downloads are what a new machine pays).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR PROGRAM... (programs: upstream-plugins)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
# shellcheck source=versions.env
. "$here/versions.env"

GO=/usr/local/go/bin/go
[ -x "$GO" ] || { echo "go-programs: $GO is missing (this machine kind has Go 1.26 there)" >&2; exit 2; }
export GOTOOLCHAIN=local GOMODCACHE="$out/cache/mod" GOCACHE="$out/cache/build" GOPATH="$out/cache/gopath"
export GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

# build NAME VERSION TARGETS...: `go install` of each package@VERSION into OUTDIR/NAME-VERSION/bin; the
# directory appears whole (renamed into place) or not at all
build() {
    local name=$1 version=$2 ldflags=$3
    shift 3
    local dest="$out/$name-$version"
    [ -f "$dest/.complete" ] && return 0
    echo "go-programs: building $name $version into $dest" >&2
    local start=$SECONDS tmp="$dest.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp/bin"
    local pkgs=() p
    for p in "$@"; do pkgs+=("$p@$version"); done
    if ! GOBIN="$tmp/bin" "$GO" install -ldflags "$ldflags" "${pkgs[@]}" >"$tmp.log" 2>&1; then
        echo "go-programs: building $name $version failed; the last lines of $tmp.log:" >&2
        tail -n 20 "$tmp.log" | sed 's/^/  /' >&2
        exit 1
    fi
    rm -f "$tmp.log"
    echo "$version" >"$tmp/.complete"
    rm -rf "$dest" && mv "$tmp" "$dest"
    echo "go-programs: $name $version built in $((SECONDS - start)) s" >&2
}

for program in "$@"; do
    case $program in
        upstream-plugins)
            p=github.com/containernetworking/plugins
            build upstream-plugins "$UPSTREAM_PLUGINS" "-extldflags -static -X $p/pkg/utils/buildversion.BuildVersion=$UPSTREAM_PLUGINS" \
                $p/plugins/main/macvlan $p/plugins/main/ipvlan $p/plugins/ipam/host-local \
                $p/plugins/main/loopback $p/plugins/main/bridge $p/plugins/meta/tuning
            ;;
        *) echo "go-programs: unknown program $program (programs: upstream-plugins)" >&2; exit 2 ;;
    esac
done

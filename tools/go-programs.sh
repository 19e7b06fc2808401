#!/bin/bash
# The ecosystem's Go programs the tests and the benchmark run, built from the Go module proxy at the versions
# pinned in tools/versions.env, once, into OUTDIR:
#
#   tools/go-programs.sh OUTDIR PROGRAM...
#
#   upstream-plugins   OUTDIR/upstream-plugins-<UPSTREAM_PLUGINS>/bin/{macvlan,ipvlan,host-local,loopback,bridge,
#                      tuning}: containernetworking/plugins as its release workflow builds them (CGO off,
#                      -extldflags -static, the version stamped in), the reference peer of the interop tests and of make bench
#   etcd               OUTDIR/etcd-<ETCD>/bin/{etcd,etcdctl}: the Kubernetes lane's store (etcd's server module has
#                      replace directives, so it is built from a wrapper module, as its own server/main.go does)
#   kubernetes         OUTDIR/kubernetes-<KUBERNETES>/bin/{kube-apiserver,kubelet}: k8s.io/kubernetes built through a
#                      wrapper module that replaces each k8s.io staging module by its v0.X.Y release (k/k's go.mod
#                      points them at ./staging, which only works inside k/k's own tree)
#   crictl             OUTDIR/crictl-<CRICTL>/bin/crictl: sigs.k8s.io/cri-tools
#   multus             OUTDIR/multus-<MULTUS>/bin/{multus,multus-daemon,multus-shim}: the thin plugin the Kubernetes lane
#                      runs, and the thick daemon and its shim
#   whereabouts        OUTDIR/whereabouts-<WHEREABOUTS>/bin/whereabouts: its IPAM plugin (go.mod has a replace, so a
#                      wrapper module carries it); OUTDIR/whereabouts-<WHEREABOUTS>/crds/*.yaml: its doc/crds at the
#                      same version (the IPPool and OverlappingRangeIPReservation CRDs, daemonset-install.yaml's
#                      RBAC), what bench/kube_ipam.py installs
#
# Each program is built with the machine's Go (/usr/local/go, GOTOOLCHAIN=local: no other toolchain is fetched)
# and module and build caches under OUTDIR/cache, so nothing outside OUTDIR changes. A program whose directory
# holds a complete build of its pinned version is left alone: a second run builds nothing and prints nothing.
# The first run prints one line per program and what it cost (the module downloads are what a new machine pays).
set -euo pipefail
PROGRAMS="upstream-plugins etcd kubernetes crictl multus whereabouts"
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR PROGRAM... (programs: $PROGRAMS)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
# shellcheck source=versions.env
. "$here/versions.env"

GO=/usr/local/go/bin/go
[ -x "$GO" ] || { echo "go-programs: $GO is missing (this machine kind has Go 1.26 there)" >&2; exit 2; }
export GOTOOLCHAIN=local GOMODCACHE="$out/cache/mod" GOCACHE="$out/cache/build" GOPATH="$out/cache/gopath"
export GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

# build NAME VERSION LDFLAGS PACKAGES...: `go install` of each package@VERSION into OUTDIR/NAME-VERSION/bin; the
# directory appears whole (renamed into place) or not at all
build() {
    local version=$2 pkgs=() p
    for p in "${@:4}"; do pkgs+=("$p@$version"); done
    run_build "$1" "$2" install_packages "$3" "${pkgs[@]}"
}

install_packages() {  # LDFLAGS PACKAGE@VERSION...
    local ldflags=$1
    shift
    GOBIN="$tmp/bin" "$GO" install -trimpath -ldflags "$ldflags" "$@"
}

# wrapped NAME VERSION LDFLAGS GOMOD PACKAGE[=BINARY]...: a wrapper module (go.mod GOMOD, one blank import per
# package so that `go mod tidy` resolves them) whose dependencies' packages are built into OUTDIR/NAME-VERSION/bin
# (as BINARY where a package's last path element is not the program's name)
wrapped() {
    run_build "$1" "$2" build_wrapped "${@:3}"
}

build_wrapped() {  # LDFLAGS GOMOD PACKAGES...
    local ldflags=$1 gomod=$2 mod="$tmp/module" p
    shift 2
    mkdir -p "$mod"
    printf '%s\n' "$gomod" >"$mod/go.mod"
    { echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
      for p in "$@"; do echo "	_ \"${p%%=*}\""; done; echo ')'; } >"$mod/tools.go"
    (cd "$mod" && "$GO" mod tidy) || return 1
    for p in "$@"; do
        local bin=${p#*=}
        [ "$bin" = "$p" ] && bin=$(basename "$p")
        (cd "$mod" && "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$bin" "${p%%=*}") || return 1
    done
    # the resolved module list is kept beside the binaries: what exactly was built
    cp "$mod/go.mod" "$tmp/go.mod" && rm -rf "$mod"
}

# run_build NAME VERSION COMMAND ARGS...: COMMAND builds into $tmp/bin
run_build() {
    local name=$1 version=$2
    shift 2
    local dest="$out/$name-$version"
    [ -f "$dest/.complete" ] && return 0
    echo "go-programs: building $name $version into $dest" >&2
    local start=$SECONDS
    tmp="$dest.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp/bin"
    if ! "$@" >"$tmp.log" 2>&1; then
        echo "go-programs: building $name $version failed; the last lines of $tmp.log:" >&2
        tail -n 20 "$tmp.log" | sed 's/^/  /' >&2
        exit 1
    fi
    rm -f "$tmp.log"
    echo "$version" >"$tmp/.complete"
    rm -rf "$dest" && mv "$tmp" "$dest"
    echo "go-programs: $name $version built in $((SECONDS - start)) s" >&2
}

# whereabouts_crds DEST MODULE@VERSION: the module's doc/crds/*.yaml into DEST/crds (whole or not at all), from the
# module cache (`go mod download` fetches the module where a build before this step left no copy); kept beside the
# binary since the module cache is a cache
whereabouts_crds() {
    local dest=$1 dir
    [ -d "$dest/crds" ] && return 0
    dir=$("$GO" mod download -json "$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir/doc/crds" ] || { echo "go-programs: $2 has no doc/crds (in '$dir')" >&2; exit 1; }
    rm -rf "$dest/crds.tmp" && mkdir -p "$dest/crds.tmp"
    cp "$dir"/doc/crds/*.yaml "$dest/crds.tmp/" && chmod u+w "$dest"/crds.tmp/*.yaml
    mv "$dest/crds.tmp" "$dest/crds"
}

for program in "$@"; do
    case $program in
        upstream-plugins)
            p=github.com/containernetworking/plugins
            build upstream-plugins "$UPSTREAM_PLUGINS" "-extldflags -static -X $p/pkg/utils/buildversion.BuildVersion=$UPSTREAM_PLUGINS" \
                $p/plugins/main/macvlan $p/plugins/main/ipvlan $p/plugins/ipam/host-local \
                $p/plugins/main/loopback $p/plugins/main/bridge $p/plugins/meta/tuning
            ;;
        etcd)
            wrapped etcd "$ETCD" "-s -w" \
                "$(printf 'module local/etcd\ngo 1.26\nrequire (\n\tgo.etcd.io/etcd/server/v3 %s\n\tgo.etcd.io/etcd/etcdctl/v3 %s\n)' "$ETCD" "$ETCD")" \
                go.etcd.io/etcd/server/v3=etcd go.etcd.io/etcd/etcdctl/v3=etcdctl
            ;;
        kubernetes)
            minor=${KUBERNETES#v1.}
            gomod="module local/kubernetes
go 1.26
require k8s.io/kubernetes $KUBERNETES
replace ("
            for m in $KUBERNETES_STAGING; do gomod+=$'\n\t'"k8s.io/$m => k8s.io/$m v0.$minor"; done
            gomod+=$'\n)'
            v=k8s.io/component-base/version
            wrapped kubernetes "$KUBERNETES" \
                "-s -w -X $v.gitVersion=$KUBERNETES -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean" \
                "$gomod" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet
            ;;
        crictl)
            build crictl "$CRICTL" "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL" sigs.k8s.io/cri-tools/cmd/crictl
            ;;
        multus)
            p=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
            # a wrapper module too: `go install pkg@version` reads the module's version list for deprecations, and
            # the proxy refuses to list this gopkg.in path (403) while it serves each version
            wrapped multus "$MULTUS" "-s -w -X $p/pkg/multus.version=$MULTUS" \
                "$(printf 'module local/multus\ngo 1.26\nrequire %s %s' $p "$MULTUS")" \
                $p/cmd/multus $p/cmd/multus-daemon $p/cmd/multus-shim
            ;;
        whereabouts)
            p=github.com/k8snetworkplumbingwg/whereabouts
            wrapped whereabouts "$WHEREABOUTS" "-s -w -X $p/pkg/version.Version=$WHEREABOUTS" \
                "$(printf 'module local/whereabouts\ngo 1.26\nrequire %s %s\nreplace github.com/gogo/protobuf => github.com/gogo/protobuf v1.3.2' $p "$WHEREABOUTS")" \
                $p/cmd=whereabouts
            whereabouts_crds "$out/whereabouts-$WHEREABOUTS" "$p@$WHEREABOUTS"
            ;;
        *) echo "go-programs: unknown program $program (programs: $PROGRAMS)" >&2; exit 2 ;;
    esac
done

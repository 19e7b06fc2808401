#!/bin/bash
# The real CNI clients the runtime tests drive that Debian ships as source only, built once into OUTDIR:
#
#   tools/runtime-clients.sh OUTDIR PYTHON
#
#   OUTDIR/cnitool          libcni's reference client (Debian's golang-github-appc-cni source; its binary
#                           packages leave cnitool out), built with Debian's golang-go in GOPATH mode
#   OUTDIR/cri/cri_v1/      Python gRPC stubs of the CRI API (api.proto from Debian's containerd source, the
#                           version installed; its gogo.proto import from golang-github-gogo-protobuf-dev),
#                           compiled by PYTHON's grpcio-tools
#   OUTDIR/versions         what they were built from; a second run with the same containerd does nothing
#
# The sources come through `apt-get source --download-only` with a private sources list, lists, cache and
# state under OUTDIR/apt: nothing of the machine's apt set-up or state changes, and no other registry is
# used. Needs the packages of `tools/packages.sh list test-host`. Prints one line when it builds.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OUTDIR PYTHON" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
py=$2

containerd_version=$(dpkg-query -W -f '${Version}' containerd 2>/dev/null) || {
    echo "runtime-clients: containerd is not installed: run tools/packages.sh install test-host" >&2
    exit 2
}
if [ -x "$out/cnitool" ] && [ -f "$out/cri/cri_v1/api_pb2_grpc.py" ] &&
    grep -qx "containerd=$containerd_version" "$out/versions" 2>/dev/null; then
    exit 0
fi
echo "runtime-clients: building cnitool and the CRI stubs (containerd $containerd_version) into $out" >&2

# --- the sources, through a private apt (the machine's mirror for its release, main only)
. /etc/os-release
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
    awk -v r="$VERSION_CODENAME" '$2 == r && $3 == "main" {print $1; exit}')
mirror=${mirror:-http://deb.debian.org/debian/}
apt=$out/apt
rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $VERSION_CODENAME main" >"$apt/sources.list"
opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root)
log=$apt/log
apt-get "${opts[@]}" update >"$log" 2>&1 || { tail -n 15 "$log" >&2; exit 1; }
fetch() {  # the installed version when the mirror still has it, else the release's
    (cd "$apt/src" && { apt-get "${opts[@]}" source --download-only "$1${2:+=$2}" >>"$log" 2>&1 ||
        apt-get "${opts[@]}" source --download-only "$1" >>"$log" 2>&1; }) || { tail -n 15 "$log" >&2; exit 1; }
}
fetch containerd "$containerd_version"
fetch golang-github-appc-cni ""
tar -C "$apt/src" -xf "$(ls "$apt"/src/containerd_*.orig.tar.*)"
tar -C "$apt/src" -xf "$(ls "$apt"/src/golang-github-appc-cni_*.orig.tar.*)"
cni_src=$(ls -d "$apt"/src/golang-github-appc-cni-*/)
cni_version=$(basename "$(ls "$apt"/src/golang-github-appc-cni_*.dsc)" .dsc)
proto=$(ls "$apt"/src/containerd-*/vendor/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto)

# --- cnitool: GOPATH mode, nothing fetched (GOPROXY=off), caches in a temporary directory
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gopath/src/github.com/containernetworking"
ln -s "$cni_src" "$work/gopath/src/github.com/containernetworking/cni"
env GO111MODULE=off GOPATH="$work/gopath" GOCACHE="$work/gocache" GOFLAGS= GOPROXY=off CGO_ENABLED=0 \
    go build -trimpath -o "$out/cnitool.new" github.com/containernetworking/cni/cnitool
mv "$out/cnitool.new" "$out/cnitool"

# --- the CRI stubs: package cri_v1 (api_pb2, api_pb2_grpc) beside the gogoproto module they import
gogo=/usr/share/gocode/src
[ -f "$gogo/github.com/gogo/protobuf/gogoproto/gogo.proto" ] || {
    echo "runtime-clients: gogo.proto is missing: run tools/packages.sh install test-host" >&2
    exit 2
}
mkdir -p "$work/proto/cri_v1" "$work/cri"
cp "$proto" "$work/proto/cri_v1/api.proto"
"$py" -m grpc_tools.protoc -I "$work/proto" -I "$gogo" --python_out="$work/cri" --grpc_python_out="$work/cri" \
    "$work/proto/cri_v1/api.proto" "$gogo/github.com/gogo/protobuf/gogoproto/gogo.proto"
rm -rf "$out/cri" && mv "$work/cri" "$out/cri"

printf 'containerd=%s\ncni=%s\n' "$containerd_version" "${cni_version#golang-github-appc-cni_}" >"$out/versions"
rm -rf "$apt"

# cni-macvlan: make venv | build | test | lint | demo | install | uninstall | release
# The plugins embed the build Python's static library (build.spec, launcher/): Debian's python3.11
# (PGO/LTO-built, libpython3.11-pic.a in libpython3.11-dev) starts faster than pyenv's shared builds.
PYTHON ?= /usr/bin/python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PREFIX ?= /opt/cni/bin
SOURCES := $(shell find cni cni_macvlan ipam cni_install -name '*.py') build.spec launcher/cni-macvlan.c $(wildcard launcher/*.py)
# the release's other files (tools/release.py stage)
RELEASE_FILES := launcher/install.sh launcher/cni-macvlan-zygote.service tools/release.py
# archives are dated with the commit (reproducible builds: two builds of a commit give the same bytes)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH

.PHONY: venv build runtime-clients upstream-plugins kube-programs test test-host test-vm test-kube lint clean install uninstall release bench bench-vm demo packages-%

# The Debian packages each target needs, installed when missing (tools/packages.sh holds the one list).
packages-%:
	@tools/packages.sh install $*

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | packages-build
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

build: dist/host-local dist/macvlan dist/release/SHA256SUMS

dist/host-local dist/macvlan &: $(VENV)/.installed $(SOURCES)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN build.spec
	@touch dist/host-local dist/macvlan

# the release as it unpacks (what `make install` and the tarball install from)
dist/release/SHA256SUMS: dist/host-local dist/macvlan $(RELEASE_FILES)
	$(PY) tools/release.py stage

# The release (tools/release.py): dist/cni-macvlan-<version>-linux-<arch>.tgz (the single files, the
# fast layout, the zygote's unit, install.sh), the OCI image as an archive (podman, FROM scratch, no
# registry), the DaemonSet with its image, and dist/SHA256SUMS of the three.
release: packages-release build
	$(PY) tools/release.py tarball image deploy sums

# The whole suite, in two lanes. The host lane runs everything this kernel can (lint, unit, exec,
# namespace, interop tests); the VM lane runs the `vm` tests (802.1Q and dummy parents) in a VM whose
# kernel has them (tools/run-in-vm.sh). Each lane must run tests: pytest's "no tests" (exit 5) fails it.
# Each lane installs what it needs first, and sets CNI_REQUIRE_ALL: a missing tool or dist/ executable
# then fails its tests instead of skipping them. --dist loadgroup: a module that builds the release
# once (test_release.py, its xdist group) runs on one worker. The VM lane runs on the VM's CPUs (as many
# as the host's) with -n auto too: software emulation makes it the longest part (13 min 20 s on one
# worker, 9 min 40 s on two, here).
test: packages-test build lint test-host test-kube test-vm

test-host: packages-test-host packages-release build runtime-clients upstream-plugins kube-programs
	CNI_REQUIRE_ALL=1 $(PY) -m pytest -n auto --dist loadgroup -q -m "not vm and not kube" tests

# The Kubernetes lane (tests/test_kube.py): a one-node cluster of plain processes (etcd, kube-apiserver, a kubelet
# on a private containerd) with Multus as its CNI calling our plugins, in the lab's namespaces; one cluster for
# the module, so one worker.
test-kube: packages-test-host release kube-programs
	CNI_REQUIRE_ALL=1 $(PY) -m pytest -q -m kube tests

test-vm: packages-test-vm build upstream-plugins
	tools/run-in-vm.sh -L "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" -- \
		env CNI_REQUIRE_ALL=1 PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest -n auto -q -p no:cacheprovider -m vm tests

# The CNI clients the runtime tests drive that Debian ships as source only (cnitool, the CRI's gRPC stubs),
# fetched with apt-get source and built once into build/runtime-clients (tests/support/layouts.py finds them).
runtime-clients: packages-test-host $(VENV)/.installed
	@tools/runtime-clients.sh build/runtime-clients $(PY)

# Upstream's Go plugins (containernetworking/plugins at the release pinned in tools/versions.env), built from
# the Go module proxy with /usr/local/go once into build/go: the reference peer of the interop tests and bench.
upstream-plugins:
	@tools/go-programs.sh build/go upstream-plugins

# The Kubernetes programs at the versions of tools/versions.env, once into build/go: etcd, kube-apiserver and
# kubelet, crictl, Multus and whereabouts. The kubernetes lease store's tests run against the first two
# (tests/support/kubeapi.py), the Kubernetes lane against all but whereabouts (tests/support/kube.py); upstream's
# bridge and loopback are the cluster's default network.
kube-programs: upstream-plugins
	@tools/go-programs.sh build/go etcd kubernetes crictl multus whereabouts

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The release's installer (dist/release/install.sh; docs/install.md): the fast layout's build in
# LIBDIR/builds/, LIBDIR/current switched to it atomically, the plugin names (cni_macvlan/plugins.py)
# as links in PREFIX, and the zygote's systemd unit (enabled and restarted where systemd runs;
# ZYGOTE=no leaves it out). LAYOUT=single installs the single-file executables instead. DESTDIR
# stages into a directory (packages). `make uninstall` removes exactly what was installed.
LIBDIR ?= /opt/cni-macvlan
LAYOUT ?= fast
ZYGOTE ?= yes
UNITDIR ?= /etc/systemd/system
DESTDIR ?=
INSTALL_ARGS = --prefix $(PREFIX) --libdir $(LIBDIR) --unitdir $(UNITDIR) $(if $(DESTDIR),--destdir $(DESTDIR))
install: build
	dist/release/install.sh $(INSTALL_ARGS) --layout $(LAYOUT) --zygote $(ZYGOTE)

uninstall: build
	dist/release/install.sh $(INSTALL_ARGS) --uninstall

# A real run of the built plugins in private namespaces: ADD two containers, ping, CHECK, DEL.
demo: packages-demo build
	bash demo/demo.sh dist/fast

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Side-by-side with upstream's Go plugins (build/go, make upstream-plugins) and Debian's (containernetworking-plugins);
# prints medians, ratios and the targets (docs/performance.md). Then the kubernetes lease store beside whereabouts
# (bench/kube_ipam.py: one etcd + kube-apiserver from make kube-programs, 1, 20 and 100 ADDs at once, 5 rounds; about 5 min here).
bench: packages-test-host build upstream-plugins kube-programs
	$(PY) bench/bench.py
	$(PY) bench/kube_ipam.py

# ipvlan beside Go's ipvlan, in the VM lane (this kernel has no ipvlan; times under emulation: read the ratios)
bench-vm: packages-test-vm build upstream-plugins
	tools/run-in-vm.sh -L "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" -- \
		$(PY) bench/bench.py --ipvlan-only --runs 20 --json bench-results/bench-vm.json

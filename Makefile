# cni-macvlan: make venv | build | test | lint | demo | install
# The plugins embed the build Python's static library (build.spec, launcher/): Debian's python3.11
# (PGO/LTO-built, libpython3.11-pic.a in libpython3.11-dev) starts faster than pyenv's shared builds.
PYTHON ?= /usr/bin/python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PREFIX ?= /opt/cni/bin
SOURCES := $(shell find cni_macvlan ipam -name '*.py') build.spec launcher/cni-macvlan.c launcher/_cni_boot.py launcher/_cni_zygote.py

.PHONY: venv build runtime-clients test test-host test-vm lint clean install bench bench-vm demo packages-%

# The Debian packages each target needs, installed when missing (tools/packages.sh holds the one list).
packages-%:
	@tools/packages.sh install $*

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | packages-build
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

build: dist/host-local dist/macvlan

dist/host-local dist/macvlan &: $(VENV)/.installed $(SOURCES)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN build.spec
	@touch dist/host-local dist/macvlan

# The whole suite, in two lanes. The host lane runs everything this kernel can (lint, unit, exec,
# namespace, interop tests); the VM lane runs the `vm` tests (802.1Q and dummy parents) in a VM whose
# kernel has them (tools/run-in-vm.sh). Each lane must run tests: pytest's "no tests" (exit 5) fails it.
# Each lane installs what it needs first, and sets CNI_REQUIRE_ALL: a missing tool or dist/ executable
# then fails its tests instead of skipping them.
test: packages-test build lint test-host test-vm

test-host: packages-test-host build runtime-clients
	CNI_REQUIRE_ALL=1 $(PY) -m pytest -n auto -q -m "not vm" tests

test-vm: packages-test-vm build
	tools/run-in-vm.sh -L "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" -- \
		env CNI_REQUIRE_ALL=1 PYTHONDONTWRITEBYTECODE=1 $(PY) -m pytest -q -p no:cacheprovider -m vm tests

# The CNI clients the runtime tests drive that Debian ships as source only (cnitool, the CRI's gRPC stubs),
# fetched with apt-get source and built once into build/runtime-clients (tests/support/layouts.py finds them).
runtime-clients: packages-test-host $(VENV)/.installed
	@tools/runtime-clients.sh build/runtime-clients $(PY)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Installs the fast layout: one frozen tree in LIBDIR, the plugin names as symlinks in PREFIX, and
# the zygote's systemd unit (enabled and (re)started where systemd runs; ZYGOTE=no leaves it out).
# LAYOUT=single installs the self-contained single-file executables instead.
LIBDIR ?= /opt/cni-macvlan
LAYOUT ?= fast
ZYGOTE ?= yes
UNITDIR ?= /etc/systemd/system
install: build
	install -d $(PREFIX)
ifeq ($(LAYOUT),single)
	for p in $$(ls dist/fast); do install -m 0755 dist/$$p $(PREFIX)/; done
else
	rm -rf $(LIBDIR).new && mkdir -p $(dir $(LIBDIR)) && cp -a dist/cni-macvlan $(LIBDIR).new
	sed 's#@LIBDIR@#$(LIBDIR)#g' launcher/cni-macvlan-zygote.service > $(LIBDIR).new/cni-macvlan-zygote.service
	rm -rf $(LIBDIR) && mv $(LIBDIR).new $(LIBDIR)
	for p in $$(ls dist/fast); do ln -sfn $(LIBDIR)/cni-macvlan $(PREFIX)/$$p; done  # the plugin names build.spec made (cni_macvlan/plugins.py)
ifeq ($(ZYGOTE),yes)
	@if [ -d /run/systemd/system ]; then \
		install -m 0644 $(LIBDIR)/cni-macvlan-zygote.service $(UNITDIR)/ && systemctl daemon-reload && \
		systemctl enable cni-macvlan-zygote && systemctl restart cni-macvlan-zygote; \
	else \
		echo "no systemd here: run '$(LIBDIR)/cni-macvlan zygote' under your service manager" \
			"(unit: $(LIBDIR)/cni-macvlan-zygote.service)"; \
	fi
endif
endif

# A real run of the built plugins in private namespaces: ADD two containers, ping, CHECK, DEL.
demo: packages-demo build
	bash demo/demo.sh dist/fast

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Side-by-side with Debian's Go plugins (apt-get install containernetworking-plugins); prints ratios.
bench: build
	$(PY) bench/bench.py

# ipvlan beside Go's ipvlan, in the VM lane (this kernel has no ipvlan; times under emulation: read the ratios)
bench-vm: packages-test-vm build
	tools/run-in-vm.sh -L "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" -- \
		$(PY) bench/bench.py --ipvlan-only --runs 20 --json bench-results/bench-vm.json

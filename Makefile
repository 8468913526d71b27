# samebytes: plain GNU make. `make serve` and `make test` are the two commands of the README.

PYTHON      ?= python3
VENV        := .venv
STAMP       := $(VENV)/.installed
# System packages the tests drive (FUSE, libnfs client tools, S3 clients). libfuse3-dev and
# pkg-config are here so that pyfuse3 builds once it joins the dependencies.
DEB_PACKAGES := fuse3 libfuse3-dev pkg-config libnfs-utils rclone s3fs s3cmd awscli openssl
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET     := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

ARGS        ?=
PYTEST_ARGS ?=

.PHONY: venv deps serve test bench clean

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp. boto3 and aiobotocore must be
# resolved in this one pip run (aiobotocore pins botocore narrowly). editable_mode=compat
# puts the source folder on sys.path, so packages added later import without a reinstall.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# Installs only what is missing: on a warm machine this runs no apt-get and needs no network.
deps:
	@set -e; missing=""; \
	for p in $(DEB_PACKAGES); do \
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

serve: venv
	$(VENV)/bin/samebytes serve $(ARGS)

test: deps venv
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

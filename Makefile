# Two commands on a fresh clone: `make demo` (the market on embedded defaults) and `make test`.
# Each installs what it needs from the hashed, compiled sets (requirements/README.md):
#   requirements.txt       runtime: web, workers, sandbox (the image installs only this)
#   requirements/demo.txt  + the demo seeder and the client it drives
#   requirements/dev.txt   + tests, lint, types
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every file hash-checked. torch is pinned to 2.13.0+cpu: pip finds that CPU wheel through its find-links
# (/opt/wheels here); no pin in these files can pull a CUDA build.
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes

.PHONY: demo test install lint compile-requirements clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per set, remade when its compiled file changes (so a pull that changes a set reinstalls it).
$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-demo: requirements/demo.txt $(VENV)/.installed-runtime
	$(PIP_INSTALL) -r requirements/demo.txt
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt $(VENV)/.installed-demo
	$(PIP_INSTALL) -r requirements/dev.txt
	touch $@

install: $(VENV)/.installed-runtime

demo: $(VENV)/.installed-demo
	scripts/demo.sh

test: $(VENV)/.installed-dev
	scripts/test.sh

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

# After editing a requirements/*.in: recompile all three with hashes (pip-tools in a throwaway venv).
compile-requirements:
	scripts/compile-requirements.sh

clean:
	rm -rf var/test

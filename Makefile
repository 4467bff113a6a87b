# Set-up and entry points. `make demo` runs the main job, `make test` passes the tests; each
# creates .venv and installs what it needs on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# A system torch (e.g. a Jetson's) is reused through --system-site-packages; otherwise this one
# is installed. Override to pick another build, e.g. TORCH_SPEC="torch==2.13.0+cpu".
TORCH_SPEC ?= torch==2.13.0
OUT ?= results

.PHONY: venv demo motivation test lint format clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=python3 if that is 3.11+)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv --system-site-packages $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

venv: $(VENV)/.installed

# The manager with a three-DNN demo workload on this host, over the rclpy-free ROS 2 transport.
demo: venv
	$(VENV)/bin/rankmap demo --duration 60

motivation: venv
	$(VENV)/bin/rankmap experiment motivation --out $(OUT)/motivation

test: venv
	$(VENV)/bin/ruff check rankmap_ros test
	$(VENV)/bin/ruff format --check rankmap_ros test
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check rankmap_ros test
	$(VENV)/bin/mypy rankmap_ros/core

format: venv
	$(VENV)/bin/ruff format rankmap_ros test
	$(VENV)/bin/ruff check --fix rankmap_ros test

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache .mypy_cache

# Two commands do everything on a fresh machine (Python 3.11, pip, no GPU):
#   make demo   - set up, then the whole chain offline on CPU: rebuild `sample`, train the four models briefly,
#                 AVD, evaluate, samples, leaderboard (printed), DVC commit + push to the local remote
#   make test   - set up, then run the test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MOTIONPIPE_DATA_ROOT ?= $(CURDIR)/data

.PHONY: setup demo test bench clean

setup: $(STAMP)

# torch goes first and alone: the pinned CPU build is on the machine's local wheel store; an unpinned resolve
# would pull a multi-GB CUDA build.
$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH, or: make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: setup
	@mkdir -p $(DAGSTER_HOME)
	$(VENV)/bin/motionpipe demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/pipeline_throughput.py

clean:
	rm -rf $(VENV) .dagster_home data dvc-remote

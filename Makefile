# korclf — set-up and checks. Everything runs offline (no hub access needed).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install quickstart test test-slow bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: a bare requirement would pull several GB of CUDA wheels.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/accelerate launch --config_file accelerate_configs/cpu.yaml \
		recipes/run.py recipes/configs/quickstart.yaml
	$(BIN)/python recipes/reload_demo.py outputs/quickstart

test: install
	$(BIN)/python -m pytest -q --durations=15

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf outputs runs bench/results

# Two commands on a fresh machine: `make warm` (the main job) and `make test`.
# Each installs what it needs first, from this project's own files.
PYTHON ?= python3
VENV   := .venv
HF2    := .venv-hf2
OLAH   := .venv-olah
ARGS   ?=

.PHONY: install install-hf2 install-olah warm test lint test-full test-hf2 demo bench gpu-check clean

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[full,test,lock]'
	touch $@

# A light second environment: the newest huggingface_hub 2.x, no torch.
install-hf2: $(HF2)/.installed
$(HF2)/.installed: pyproject.toml
	test -x $(HF2)/bin/python || $(PYTHON) -m venv $(HF2)
	$(HF2)/bin/python -m pip install -q --upgrade pip
	$(HF2)/bin/python -m pip install -q -e '.[test,lock]' 'huggingface_hub>=2,<3'
	touch $@

# olah, a real Hub mirror, for the mirror tests (it needs a newer huggingface_hub than whisperx allows).
install-olah: $(OLAH)/.installed
$(OLAH)/.installed:
	test -x $(OLAH)/bin/python || $(PYTHON) -m venv $(OLAH)
	$(OLAH)/bin/python -m pip install -q 'olah==0.5.4'
	touch $@

warm: install
	$(VENV)/bin/lyricsub-hub warm $(ARGS)

test: lint test-full test-hf2

lint: install
	$(VENV)/bin/ruff check lyricsub_hub tests scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-full: install install-olah install-hf2  # hf2: `hf cache` judges our cache in the 0.36 run too
	$(VENV)/bin/python -m pytest -q tests

test-hf2: install-hf2 install-olah
	$(HF2)/bin/python -m pytest -q -m "not torch" tests

demo: install
	$(VENV)/bin/python scripts/demo.py

bench: install install-hf2
	$(VENV)/bin/python scripts/bench.py

gpu-check: install
	$(VENV)/bin/python scripts/gpu_check.py

clean:
	rm -rf $(VENV) $(HF2) $(OLAH) .bench .demo

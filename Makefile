# Two commands for a new user: `make test` and `make demo`. Both set up .venv first when needed
# (pinned requirements, then the C++ extension), and are fast when nothing changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CSRC   := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu')

.PHONY: test demo docs-images build bench bench-training sanitize cuda-check package-check clean

test: $(VENV)/.built
	$(BIN)/python -m pytest

demo: $(VENV)/.built
	$(BIN)/hyperdml demo --overwrite

# The figures in docs/images (README, docs): the demo's report, redrawn when any package source changes.
DOC_IMAGES  := docs/images/poincare_disk_demo.png docs/images/dendrogram_demo.png
PACKAGE_SRC := $(shell find hyperdml -name '*.py')

docs-images: $(DOC_IMAGES)

$(DOC_IMAGES) &: $(VENV)/.built $(PACKAGE_SRC)
	$(BIN)/hyperdml demo --overwrite --out runs/docs-images --images docs/images

build: $(VENV)/.built

# The committed one-thread CPU tables (the two-thread ones: docs/benchmarks.md).
bench: $(VENV)/.built
	$(BIN)/python benchmarks/bench_ops.py cdist --threads 1
	$(BIN)/python benchmarks/bench_ops.py hyphc --threads 1

bench-training: $(VENV)/.built
	$(BIN)/python benchmarks/bench_training.py

# ASan + UBSan build of the CPU extension in build/sanitize, op tests under it
sanitize: $(VENV)/.built
	bash tools/sanitize_test.sh

# Compile the CUDA kernels without a GPU (CUDA toolkit from pinned pip wheels) into build/cuda-check.
cuda-check: $(VENV)/.built
	bash tools/cuda_compile_check.sh

# sdist -> wheel built from it -> fresh venv -> smoke tests from outside the tree (build/package).
package-check: $(VENV)/.deps
	bash tools/package_test.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --upgrade -r requirements.txt
	touch $@

$(VENV)/.editable: setup.py setup.cfg $(VENV)/.deps
	HYPERDML_SKIP_EXTENSION=1 $(BIN)/python -m pip install --no-build-isolation --no-deps -e .
	touch $@

# Incremental rebuild of the extension in place (ninja) whenever a C++/CUDA source changes.
$(VENV)/.built: $(VENV)/.editable $(CSRC)
	HYPERDML_WITH_CUDA=$${HYPERDML_WITH_CUDA:-0} $(BIN)/python setup.py -q build_ext --inplace
	touch $@

clean:
	rm -rf build hyperdml/_C*.so *.egg-info $(VENV)/.built $(VENV)/.editable

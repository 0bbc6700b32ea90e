# The README's commands. A fresh machine needs only python3 (>= 3.11) and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo web test bench clean

$(BIN)/fieldbot: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/fieldbot

# The console demo on the example roster: you are Trần Văn Minh, a teacher at Tiểu học Phú Hòa 1.
# It first prints a sign-in link for the district officer (Lê Minh Tiến): run `make web` in another terminal
# and open the link in a browser within 10 minutes to see the overview.
demo: install
	$(BIN)/fieldbot roster import examples/roster.csv
	@echo
	@echo "Trang web theo dõi tiến độ (web view): chạy 'make web' ở cửa sổ khác rồi mở liên kết này:"
	$(BIN)/fieldbot web link $(or $(OFFICER),0913860438)
	@echo
	$(BIN)/fieldbot chat --phone $(or $(PHONE),0901000002)

# The web view alone on http://127.0.0.1:8080 (`fieldbot run` serves it too when FIELDBOT_WEB_LISTEN is set).
web: install
	$(BIN)/fieldbot web serve --listen $(or $(LISTEN),127.0.0.1:8080)

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

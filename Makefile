# Carnet: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INSTANCE := $(CURDIR)/instance
HOST ?= 127.0.0.1
PORT ?= 5000
UI_DEBS := xvfb libgl1-mesa-dri libmtdev1 xauth

export CARNET_INSTANCE_PATH ?= $(INSTANCE)

.PHONY: run test install system-deps serve otp demo clean bench bench-load

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# A secret for this machine's local instance, made once, never committed.
$(INSTANCE)/secret_key:
	@mkdir -p $(INSTANCE)
	@$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@
	@chmod 600 $@

$(INSTANCE)/master_key:
	@mkdir -p $(INSTANCE)
	@$(PYTHON) -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > $@
	@chmod 600 $@

KEYS := CARNET_SECRET_KEY_FILE=$(INSTANCE)/secret_key CARNET_MASTER_KEY_FILE=$(INSTANCE)/master_key

## make run: venv + install, migrate the embedded SQLite database, demo data, serve, open the app.
run: $(STAMP) $(INSTANCE)/secret_key $(INSTANCE)/master_key
	@$(KEYS) $(BIN)/carnet db upgrade
	@$(KEYS) $(BIN)/carnet demo
	@$(KEYS) HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) sh scripts/run.sh

otp: $(STAMP) $(INSTANCE)/secret_key $(INSTANCE)/master_key
	@$(KEYS) $(BIN)/carnet demo otp

## make test: install what tests need (Python packages; Debian packages for the UI tests when root), lint, test.
# Two pytest-xdist workers (this machine's two cores); PYTEST_ARGS adds to them (e.g. -k, a file), XDIST=-n0
# runs in one process.
XDIST ?= -n 2 --dist loadgroup
test: $(STAMP) system-deps
	$(BIN)/ruff check backend mobile migration bench tests
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

system-deps:
	@missing=""; for p in $(UI_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages for the UI tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "MISSING Debian packages for the UI tests:$$missing"; \
	    echo "  install them with: sudo apt-get install$$missing"; \
	    echo "  (without them the UI tests are skipped locally and fail in CI)"; \
	  fi; \
	fi

bench: $(STAMP)
	@for b in bench/*.py; do case $$b in bench/load.py|bench/serve_local.py) continue;; esac; \
	  [ -f "$$b" ] && $(BIN)/python $$b; done; true

## make bench-load: production mode (gunicorn, PostgreSQL carnet_bench, Redis db 12) on loopback, seeded
## data, wrk at 16 clients beside /api/health; prints the README's table. BENCH_ARGS="--patients 100000".
bench-load: $(STAMP)
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk is missing: sudo apt-get install wrk"; exit 1; fi; }
	$(BIN)/python bench/load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(INSTANCE) .pytest_cache tests/ui/screenshots/*.png

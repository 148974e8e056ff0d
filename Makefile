# Patchcycle: the two commands a new user needs are `make demo` and `make test`.
PY := .venv/bin/python
SYNCED := .venv/.patchcycle-synced

.PHONY: install demo test lint bench clean

# Let Python cache the bytecode of the project's own modules (the tests and the demo start many Python
# processes: Airflow tasks, triggers, fleetsim); a shell that sets PYTHONDONTWRITEBYTECODE would have
# each of them compile the project from source again. The installed packages are compiled at install.
unexport PYTHONDONTWRITEBYTECODE

## The Python environment, then the servers the process stack runs (PostgreSQL, Redis) and the UI tests' browser
## (Chromium), only if missing.
install: $(SYNCED)
	@scripts/install-services.sh

$(SYNCED): pyproject.toml uv.lock scripts/bootstrap.sh scripts/checkov-requirements.txt
	scripts/bootstrap.sh
	@touch $@

## Run every demo tenant's monthly cycle through Airflow against fleetsim; evidence lands in out/.
## CYCLE_DATE=YYYY-MM-DD picks another cycle (default: the most recent fourth Sunday).
demo: install
	$(PY) -m devtools.demo $(if $(CYCLE_DATE),--cycle-date $(CYCLE_DATE))

## The whole test suite (unit, fleetsim, DAG integrity, end-to-end cycles through Airflow).
test: install
	$(PY) -m pytest -n 4 --dist loadgroup -q --durations=25

lint: install
	.venv/bin/ruff check .

bench: install
	$(PY) benchmarks/bench_evidence_pack.py

clean:
	rm -rf var out .pytest_cache

# aunet: two commands do all the set-up on a fresh machine:
#   make reproduce   builds the environment, makes the synthetic data, executes notebooks 01-07 with
#                    papermill (aunet reproduce): results/manifest.json, the executed notebooks and a log in
#                    results/reproductions/<time>/, the tables in results/tables/, figures/, the runs in
#                    results/runs/, and the README's results section regenerated
#   make test        builds the environment, runs ruff (the linter), then the tests (unit + notebook tests)
#   make study       notebook 08's pre-registered study "does attention help?" (42 runs; it prints its time
#                    and CPU): run folders in results/runs/study/ (an interrupted study continues),
#                    tables results/tables/study_*, figures/study_forest.png and study_focus.png
# Other targets: setup (the environment only), lab (JupyterLab on the project's kernel), clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aunet-installed
# Extra papermill parameters for every notebook that declares them, e.g. make reproduce PARAMS="-p ct150_seeds [0,1,2,3]"
STUDY    := notebooks/08_does_attention_help.ipynb
EXECUTED := results/executed
PARAMS ?=

.PHONY: setup test browser reproduce study lab data clean lock

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name aunet --display-name "Python (aunet)" >/dev/null
	touch $@

test: setup browser
	$(PY) -m ruff check aunet tests benchmarks
	$(PY) -m pytest

# tests/test_viewer_browser.py drives the slice viewer in Chromium; on CI (CI=true) install Debian's
# chromium when it is missing (elsewhere that test is skipped with the reason instead)
browser:
	@if [ "$$CI" = "true" ] && [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "== apt-get install chromium (browser widget test)"; \
	  log=$$(mktemp); \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log; \
	fi

data: data/phantom/dataset.json

data/phantom/dataset.json: | $(STAMP)
	$(VENV)/bin/aunet data phantom --out data/phantom --cases 30 --seed 0 --overwrite

reproduce: setup data
	$(VENV)/bin/aunet reproduce --profile quick $(PARAMS)

study: setup data
	mkdir -p $(EXECUTED)
	@start=$$(date +%s); \
	$(VENV)/bin/papermill --kernel aunet --cwd notebooks -p readme ../README.md $(PARAMS) $(STUDY) $(EXECUTED)/$(notdir $(STUDY)) && \
	$(PY) -c "from aunet.executed import publish; publish('$(EXECUTED)/$(notdir $(STUDY))', 'results/notebooks/$(notdir $(STUDY))')" && \
	echo "make study: $$(( ($$(date +%s) - start) / 60 )) min on $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $$(nproc) cores"
	@echo "Executed notebook in $(EXECUTED)/, tables in results/tables/study_*, figures in figures/study_*.png."

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. notebooks/01_attention_gate.ipynb

lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^torch==' | sed '1i torch==2.13.0' > requirements.txt

clean:
	rm -rf results/reproductions .pytest_cache

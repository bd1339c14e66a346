# rtqa developer and user entry points. Every target installs what it needs into
# .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RTQA   := $(VENV)/bin/rtqa
STAMP  := $(VENV)/.rtqa-installed
SHARED ?= ../shared
NELMS  := $(SHARED)/validation/nelms2015
DEMO_OUT ?= rtqa-demo-report.html

.PHONY: help install test demo validate bench clean

help:
	@echo "make demo      run a full QA check on the bundled sample plan (plans_sample/hcc_pass)"
	@echo "make test      run the test suite (pytest)"
	@echo "make validate  Nelms 2015 analytic DVH benchmark (needs $(NELMS))"
	@echo "make bench     whole-plan DVH speed and memory against dicompyler-core"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# Until `rtqa check` lands (issue 5) the demo shows the DVH engine on the sample plan.
demo: $(STAMP)
	$(RTQA) dvh plans_sample/hcc_pass -m 'D95%[Gy]' -m 'D0.035cc[Gy]' -m 'V20Gy[%]' -m 'CV15Gy[cc]'

validate: $(STAMP)
	$(PY) -m rtqa.validation.nelms $(NELMS)

bench: $(STAMP)
	$(PY) bench/dvh_bench.py

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache build *.egg-info

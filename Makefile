# rtqa developer and user entry points. Every target installs what it needs into
# .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RTQA   := $(VENV)/bin/rtqa
STAMP  := $(VENV)/.rtqa-installed
BASE   := $(VENV)/.rtqa-base
SHARED ?= ../shared
NELMS  := $(SHARED)/validation/nelms2015
DEMO_OUT ?= rtqa-demo-report.html

.PHONY: help install test test-fast demo demo-fail browser dcmtk eclipse-example validate bench bench-batch bench-check bench-batch-sample bench-serve pdf-tools fuzz wheel-check clean

help:
	@echo "make demo      run a full QA check on the bundled sample plan (plans_sample/hcc_pass)"
	@echo "make demo-fail the same on a plan that fails a few checks (exit 1 expected)"
	@echo "make test      run the test suite (pytest); make test-fast skips the slow tests"
	@echo "make wheel-check  build the wheel, install it in a fresh venv, check the samples from /tmp"
	@echo "make validate  Nelms 2015 analytic DVH benchmark (needs $(NELMS))"
	@echo "make eclipse-example  fetch the Eclipse example plan with TPS DVHs (real-export tests)"
	@echo "make bench     whole-plan DVH time, memory and Nelms accuracy: rtqa, plastimatch, dicompyler-core"
	@echo "make fuzz      mutate the sample DICOM files: no crash, no false PASS"
	@echo "make bench-batch  rtqa batch throughput, scaling and worker memory"
	@echo "make bench-check  CPU of one rtqa check by stage (imports, reading, DVHs, checks, report)"
	@echo "make bench-batch-sample  batch plans per CPU-minute on the bundled sample, 1 and 2 workers"
	@echo "make bench-serve  rtqa serve: instances/s received, last instance to report"

# The demo needs rtqa alone; the tests and batch also need the test and Dask extras.
# (again when a compiled kernel's C source changes: rtqa/_native.py)
$(BASE): pyproject.toml setup.py $(wildcard rtqa/*/_c*.c)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $(BASE)

$(STAMP): $(BASE)
	$(PY) -m pip install -q -e '.[test,dask]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

# The product is the wheel: build it from this tree, install it into a fresh venv and
# check both samples from another folder (no checkout on the path, no constraints/ folder).
wheel-check:
	bash devtools/wheel_check.sh $(PYTHON)

demo: $(BASE)
	$(RTQA) check plans_sample/hcc_pass --html $(DEMO_OUT)
	@echo "HTML report for peer review: $(DEMO_OUT)"

# The second sample fails a few checks on purpose (exit code 1 is expected).
demo-fail: $(BASE)
	-$(RTQA) check plans_sample/hcc_fail --html rtqa-demo-fail.html

# Headless Chromium for the HTML report test (Debian package); the test skips without it.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: the HTML browser test will be skipped"

# dcmtk's storescu/echoscu (Debian package), the independent DICOM client of the
# rtqa serve tests and benchmark; those tests skip without it.
dcmtk:
	@command -v storescu >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq dcmtk >/dev/null) || echo "dcmtk could not be installed: the rtqa serve client tests will be skipped"

# Pango for WeasyPrint (rtqa check --pdf) and poppler's pdftoppm/pdftotext for the PDF
# report test (Debian packages); the test skips without them.
pdf-tools:
	@(command -v pdftoppm >/dev/null 2>&1 && ldconfig -p | grep -q libpangoft2 && ldconfig -p | grep -q libharfbuzz-subset) || (apt-get update -qq && apt-get install -y -qq poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 >/dev/null) || echo "poppler/pango could not be installed: the PDF test will be skipped"

# Varian Eclipse example plan with the planning system's own DVHs (dicompyler-core 0.5.6's
# source distribution on PyPI): tests/acceptance/test_real_exports.py compares rtqa with it
# and skips when it is absent. Set RTQA_ECLIPSE_EXAMPLE to use a copy elsewhere.
EXAMPLE_CACHE := .cache/real-exports
eclipse-example: $(STAMP)
	@test -d $(EXAMPLE_CACHE)/dicompyler-core-0.5.6/tests/testdata/example_data || ( \
	  mkdir -p $(EXAMPLE_CACHE) && \
	  $(PY) -m pip download -q --no-binary :all: --no-deps -d $(EXAMPLE_CACHE) dicompyler-core==0.5.6 && \
	  tar -xzf $(EXAMPLE_CACHE)/dicompyler-core-0.5.6.tar.gz -C $(EXAMPLE_CACHE) \
	    dicompyler-core-0.5.6/tests/testdata/example_data )

validate: $(STAMP)
	$(PY) -m rtqa.validation.nelms $(NELMS)

# rtqa, plastimatch (Debian package, installed here when absent) and dicompyler-core
# (.venv-peer) on the same plans, interleaved. BENCH_DVH_ARGS e.g. "--runs 5 --profile".
bench: $(STAMP)
	@command -v plastimatch >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq plastimatch >/dev/null) || echo "plastimatch could not be installed: the bench skips it"
	$(PY) bench/dvh_bench.py $(BENCH_DVH_ARGS)

# A few hundred generated plans (some broken) with 1 and 2 workers: plans per minute,
# scaling ratio and worker memory.
bench-batch: $(STAMP)
	$(PY) bench/batch_bench.py $(BENCH_ARGS)

# Issue 16 items 3 and 5: CPU of one `rtqa check` by stage (JSON, HTML), and batch plans per
# CPU-minute on copies of the bundled sample with 1 and 2 workers next to a CPU-loop reference.
bench-check: $(STAMP)
	$(PY) bench/check_cpu.py $(BENCH_CHECK_ARGS)

bench-batch-sample: $(STAMP)
	$(PY) bench/batch_sample_bench.py $(BENCH_BATCH_SAMPLE_ARGS)

# rtqa serve receiving the bundled sample from storescu: instances per second received,
# and the time from the last instance to the finished report.
bench-serve: $(STAMP) dcmtk
	$(PY) bench/serve_bench.py $(BENCH_ARGS)

# Mutated sample files (truncation, byte flips, tag deletion, value corruption): no crash,
# no PASS on damaged input. FUZZ_ARGS e.g. "--cases 5000 --seed 7".
fuzz: $(STAMP)
	PYTHONPATH=devtools $(PY) -m rtqa_fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache build *.egg-info

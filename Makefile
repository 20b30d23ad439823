# MedAI: `make demo` and `make test` each set up .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin MEDAI_DATA_DIR), undefined)
  ifneq ($(wildcard $(SHARED_DATA)),)
    export MEDAI_DATA_DIR := $(SHARED_DATA)
  endif
endif
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export MPLBACKEND := Agg

.PHONY: install demo test lint bench clean

# The DICOM gateway's tests run a real PACS: Debian's Orthanc with its DICOMweb plugin, and dicom3tools'
# dciodvfy to validate what MedAI writes (root on these machines; skipped where apt-get is missing).
# The web page's tests drive Debian's chromium through Playwright (never `playwright install`: no download).
SYSTEM_PACKAGES := orthanc orthanc-dicomweb dicom3tools chromium fonts-dejavu-core

$(STAMP): pyproject.toml constraints.txt
	@if ! command -v Orthanc >/dev/null || ! test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so \
	    || ! command -v dciodvfy >/dev/null || ! command -v chromium >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $(SYSTEM_PACKAGES); \
	  else echo "note: install $(SYSTEM_PACKAGES) (Debian) for the PACS and browser tests"; fi; fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	COLUMNS=$${COLUMNS:-160} $(VENV)/bin/medai demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

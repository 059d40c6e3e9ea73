# Two commands for a fresh machine (see README.md):
#   make demo   set everything up (.venv, the project with all extras, the VapourSynth plugin) and upscale a sample
#   make test   lint (ruff), types (mypy, strict on hat_plugin) and the test suite (import cycles included);
#               sets up first if needed; .ci/run calls this

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MODEL ?= --model hat-tiny-x4

.PHONY: setup demo test check lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml vs_filter/hat_shim.c
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
		echo "Python >= 3.12 is needed (VapourSynth R74+ requires it): set PYTHON=python3.12"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[vs,gui,test]'
	$(BIN)/python -m vs_filter install
	$(BIN)/vapoursynth config
	@# Debian's ffmpeg and ffprobe: a test-only tool that makes the quirky video files of tests/quirk_videos.py
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get install -y -qq ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }; \
		else echo "note: the video quirk tests need ffmpeg and ffprobe: sudo apt-get install ffmpeg (they skip without)"; fi
	touch $(STAMP)

demo: setup
	$(BIN)/python -m hat_plugin samples/astronaut.png -o out/ $(DEMO_MODEL) --overwrite

test: check
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

check: lint typecheck

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy --strict hat_plugin
	$(BIN)/mypy --follow-imports=silent vs_filter gui

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out build *.egg-info

# Two commands for a fresh machine (see README.md):
#   make demo   set everything up (.venv, the project with all extras, the VapourSynth plugin) and upscale a sample
#   make test   lint (ruff), types (mypy: strict on hat_plugin; vs_filter, gui, tests and bench too) and the test
#               suite (import cycles included); sets up first if needed; .ci/run calls this
#   make test-fast   the development loop: the tests not marked slow (no real-process, video-encode, training,
#               fuzz, vspipe or Ray runs), without lint and types

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MODEL ?= --model hat-tiny-x4
# System packages: the libraries Qt's X11 (xcb) platform plugin needs on a bare Debian/Ubuntu, and Xvfb, the X
# server the desktop app's test opens its window on. Installed with apt-get when setup runs as root.
SYSTEM_PACKAGES := xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	libxkbcommon-x11-0 libx11-xcb1 libegl1 libgl1 libfontconfig1 libdbus-1-3

.PHONY: setup system-packages demo test test-fast check lint typecheck bench clean

setup: $(STAMP)

system-packages:
	@if ! command -v apt-get >/dev/null; then \
		echo "No apt-get: install Xvfb and Qt's xcb libraries with your package manager (see README.md)"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "Not root, so system packages are not installed; for the desktop app and its X server test run:"; \
		echo "  sudo apt-get install -y $(SYSTEM_PACKAGES)"; \
	else \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; }; \
	fi

$(STAMP): pyproject.toml vs_filter/hat_shim.c
	$(MAKE) --no-print-directory system-packages
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

# The wheels the GPU machine lacks for bench/gpu_check.sh, pinned to the versions installed here: carried with a
# device call, and installed offline by the check's rehearsal in the test suite (bench/gpu_rehearsal.py)
WHEELS := .whl/.downloaded

$(WHEELS): $(STAMP) bench/gpu_wheels.py
	$(BIN)/python bench/gpu_wheels.py
	touch $(WHEELS)

test: check $(WHEELS)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

test-fast: setup
	OMP_NUM_THREADS=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" -n 2

check: lint typecheck

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# tests/ and bench/: stale imports, unknown names and wrong calls fail; the codes left out are noise there (optional
# Qt and PyAV returns, monkeypatched methods, indexing nn.ModuleList, unannotated empty literals)
TEST_TYPES := --follow-imports=silent --disable-error-code union-attr --disable-error-code method-assign \
	--disable-error-code var-annotated --disable-error-code index --disable-error-code operator

typecheck: setup
	$(BIN)/mypy --strict hat_plugin
	$(BIN)/mypy --follow-imports=silent vs_filter gui
	$(BIN)/mypy $(TEST_TYPES) tests bench

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out build *.egg-info .whl

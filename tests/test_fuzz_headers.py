"""Fuzzing image headers (Hypothesis, derandomized: the same examples every run) against ``read_image`` and the CLI:
no exception outside the ``HATError`` family, no hang, no partial output. The work is done by
``fuzz_headers_worker.py`` in a subprocess capped at 6 GB of address space (PyTorch needs about that to start its
threads), so a decoder that falls for a mutated size field fails the test instead of exhausting this machine."""

from __future__ import annotations

import json

import pytest
from conftest import golden_weights
from hostile_files import run_limited

pytestmark = pytest.mark.slow  # Hypothesis fuzzing in a subprocess: tens of seconds

READER_EXAMPLES = 300
CLI_EXAMPLES = 25


def test_mutated_headers_give_images_or_hat_errors_and_never_partial_output():
    code = (
        "import sys; sys.path.insert(0, 'tests'); import fuzz_headers_worker as w; "
        f"w.main({str(golden_weights('tiny-x2-w8'))!r}, {READER_EXAMPLES}, {CLI_EXAMPLES})"
    )
    done = run_limited(code, memory=6 << 30, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["reader: image"] + counts["reader: HATError"] == READER_EXAMPLES
    assert counts["cli: written"] + counts["cli: failed cleanly"] == CLI_EXAMPLES
    for key in ("reader: image", "reader: HATError", "cli: written", "cli: failed cleanly"):
        assert counts[key] >= 3, counts  # the mutations reach both outcomes: the fuzzing is not vacuous

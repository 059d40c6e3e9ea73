"""configure_process(): sleeping OpenMP threads, which only take effect when set before PyTorch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _policy(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter and return the OMP_WAIT_POLICY it ends with and passive_threads()."""
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | env
    script = (
        f"{code}\nimport os\nfrom hat_plugin.runtime import configure_process, passive_threads\n"
        "configure_process()\nprint(os.environ.get('OMP_WAIT_POLICY'), passive_threads())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=environ, check=True, timeout=120
    )
    return done.stdout.strip()


def test_threads_sleep_when_configured_before_torch() -> None:
    assert _policy("") == "PASSIVE True"


def test_too_late_once_torch_is_loaded() -> None:
    assert _policy("import torch") == "None False"


@pytest.mark.parametrize(
    ("env", "expected"), [({"OMP_WAIT_POLICY": "active"}, "active False"), ({"GOMP_SPINCOUNT": "1000"}, "None False")]
)
def test_an_explicit_setting_is_kept(env: dict[str, str], expected: str) -> None:
    assert _policy("", **env) == expected

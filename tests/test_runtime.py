"""configure_process(): how idle OpenMP threads wait (a brief spin on an idle CPU, sleep on a busy one), which only
takes effect when set before PyTorch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_IDLE = "import os\nos.getloadavg = lambda: (0.0, 0.0, 0.0)"
_BUSY = "import os\nos.getloadavg = lambda: (float(os.cpu_count()), 0.0, 0.0)"


def _policy(code: str, **env: str) -> str:
    """Run ``code`` then ``configure_process()`` in a fresh interpreter; returns OMP_WAIT_POLICY, GOMP_SPINCOUNT
    and ``thread_wait_policy()`` as it leaves them, ``|``-separated."""
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | env
    script = (
        f"{code}\nimport os\nfrom hat_plugin.runtime import configure_process, thread_wait_policy\n"
        "configure_process()\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), thread_wait_policy(), sep='|')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=environ, check=True, timeout=120
    )
    return done.stdout.strip()


def test_threads_sleep_at_once_on_a_busy_cpu() -> None:
    assert _policy(_BUSY) == "PASSIVE|None|sleep at once (busy CPU)"


def test_threads_spin_briefly_on_an_idle_cpu() -> None:
    assert _policy(_IDLE) == "None|10000|brief spin (idle CPU)"


@pytest.mark.slow
def test_too_late_once_torch_is_loaded() -> None:
    assert _policy(f"{_IDLE}\nimport torch") == "None|None|OpenMP's default (it was loaded first)"


@pytest.mark.parametrize(
    ("env", "expected"), [({"OMP_WAIT_POLICY": "active"}, "active|None"), ({"GOMP_SPINCOUNT": "1000"}, "None|1000")]
)
def test_an_explicit_setting_is_kept(env: dict[str, str], expected: str) -> None:
    assert _policy(_BUSY, **env) == f"{expected}|as set in the environment"

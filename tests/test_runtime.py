"""configure_process(): how idle OpenMP threads wait (a brief spin while other processes leave the CPU idle, sleep
while they keep it busy), decided from /proc readings taken as the process starts, which only takes effect when set
before PyTorch loads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hat_plugin import runtime
from hat_plugin.runtime import CpuSample, parse_cpu_sample, wait_setting

REPO = Path(__file__).resolve().parent.parent
TICKS = 30  # 0.15 s on 2 CPUs at 100 ticks per second


def _proc(busy: int, idle: int, own: int) -> tuple[list[str], list[str]]:
    """Text as /proc/stat (2 CPUs; ``busy`` ticks spread over user, system and steal) and the fields of
    /proc/self/stat after the command name (``own`` ticks split over utime and stime)."""
    user, system, steal = busy - busy // 2 - busy // 4, busy // 2, busy // 4
    total = f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0"
    per_cpu = [f"cpu{i} {user // 2} 0 {system // 2} {idle // 2} 0 0 0 {steal // 2} 0 0" for i in range(2)]
    stat = [total, *per_cpu, "intr 1 2 3", "ctxt 99", "procs_running 1"]
    fields = [
        "R",
        "1",
        "1",
        "1",
        "0",
        "-1",
        "4194304",
        "5",
        "0",
        "0",
        "0",
        str(own - own // 3),
        str(own // 3),
        "0",
        "0",
    ]
    return stat, fields + ["20", "0", "3"]


def _readings(*samples: tuple[int, int, int]) -> Callable[[], CpuSample | None]:
    """A reader answering each call with the next (busy, idle, own) sample, parsed as the real one is."""
    it: Iterator[tuple[int, int, int]] = iter(samples)
    return lambda: parse_cpu_sample(*_proc(*next(it)))


def _no_sleep(_seconds: float) -> None:
    """The sampling interval, without waiting (the readings are fixed)."""


def _busy_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1-minute load average that says busy: what the machine shows just after a run has finished."""
    monkeypatch.setattr(os, "getloadavg", lambda: (2.7, 1.5, 0.6))


def test_parses_proc_stat() -> None:
    sample = parse_cpu_sample(*_proc(busy=40, idle=100, own=9))
    assert sample == CpuSample(busy=40, total=140, own=9, cpus=2)


def test_idle_cpu_spins_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    _busy_load_average(monkeypatch)
    setting, words = wait_setting(_readings((1000, 5000, 0), (1001, 5000 + TICKS - 1, 0)), _no_sleep)
    assert setting == {"GOMP_SPINCOUNT": "10000"}
    assert words == "brief spin (idle CPU: other processes using 0.1 of 2 CPUs)"


def test_idle_just_after_our_own_busy_run_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own earlier work keeps the load average high for a minute; the ticks counted now are all this
    process's (its finished children included), so the machine is idle for anyone else."""
    _busy_load_average(monkeypatch)
    before, after = (50_000, 9_000, 40_000), (50_000 + TICKS - 2, 9_002, 40_000 + TICKS - 2)
    setting, words = wait_setting(_readings(before, after), _no_sleep)
    assert setting == {"GOMP_SPINCOUNT": "10000"}
    assert "0.0 of 2 CPUs" in words


@pytest.mark.parametrize("others", [1, 2])
def test_busy_with_other_processes_sleeps_at_once(monkeypatch: pytest.MonkeyPatch, others: int) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a load average that has not caught up yet
    busy = others * TICKS // 2
    setting, words = wait_setting(_readings((7000, 3000, 500), (7000 + busy, 3000 + TICKS - busy, 500)), _no_sleep)
    assert setting == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert words == f"sleep at once (busy CPU: other processes using {others:.1f} of 2 CPUs)"


def test_without_proc_the_load_average_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    _busy_load_average(monkeypatch)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    setting, words = wait_setting(lambda: None, _no_sleep)
    assert setting == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert words == "sleep at once (busy CPU: load average 2.7 on 2 CPUs)"


def test_the_real_proc_readings_parse() -> None:
    sample = runtime.read_cpu_sample()
    if not sys.platform.startswith("linux"):
        assert sample is None
        return
    assert sample is not None
    assert 0 <= sample.busy <= sample.total
    assert sample.cpus >= 1
    assert sample.own >= 0


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


def _counting(busy_per_call: int) -> str:
    """Code that makes the process's /proc reader count up ``busy_per_call`` of every 30 ticks per call."""
    return (
        "import itertools\nimport hat_plugin.runtime as r\ncalls = itertools.count()\n"
        "def fake():\n    n = next(calls)\n"
        f"    return r.CpuSample(busy={busy_per_call} * n, total=30 * n, own=0, cpus=2)\n"
        "r.read_cpu_sample = fake"
    )


def test_the_front_ends_setting_follows_the_readings() -> None:
    assert _policy(_counting(30)) == "PASSIVE|None|sleep at once (busy CPU: other processes using 2.0 of 2 CPUs)"
    assert _policy(_counting(0)) == "None|10000|brief spin (idle CPU: other processes using 0.0 of 2 CPUs)"


@pytest.mark.slow
def test_too_late_once_torch_is_loaded() -> None:
    assert _policy(f"{_counting(0)}\nimport torch") == "None|None|OpenMP's default (it was loaded first)"


@pytest.mark.parametrize(
    ("env", "expected"), [({"OMP_WAIT_POLICY": "active"}, "active|None"), ({"GOMP_SPINCOUNT": "1000"}, "None|1000")]
)
def test_an_explicit_setting_is_kept(env: dict[str, str], expected: str) -> None:
    assert _policy(_counting(30), **env) == f"{expected}|as set in the environment"

"""The bench's rows show each timing's spread and the load it ran under beside the median, so a reader can tell a
ratio within the noise from a real difference."""

from __future__ import annotations

import pytest

from bench.__main__ import Result, comparison_table, load_cells, timing_cells
from bench.machine import LoadMeter, Machine

MACHINE = Machine(cpu="Test CPU", cores=2, flags=("avx2",), ghz=2.0, ghz_source="assumed")


def test_timing_cells_give_the_median_and_the_range() -> None:
    assert timing_cells([1.25, 1.1, 1.4, 1.2, 1.3]) == ("1.250", "1.100-1.400")
    assert timing_cells([2.0]) == ("2.000", "2.000-2.000")


def test_load_cells_give_the_load_range_and_the_other_processes() -> None:
    assert load_cells([2.71, 0.4, 1.5], [1.04, 0.96]) == ("0.4-2.7", "1.00")
    assert load_cells([], []) == ("-", "-")


def test_table_rows_carry_spread_and_load() -> None:
    ours = Result("ours", "fp32", seconds=[1.2, 1.0, 1.1], cpu_seconds=[2.0, 2.0, 2.0], minflt=[0, 0, 0])
    ours.loads, ours.others = [0.3, 0.9], [0.0, 0.1]
    peer = Result("openvino", "fp32", seconds=[1.15, 1.05, 1.3], cpu_seconds=[2.1] * 3, minflt=[1, 1, 1])
    peer.loads, peer.others = [0.9, 1.2], [0.05, 0.05]
    table = comparison_table([("HAT-S_SRx4", 64, [ours, peer], 100.0)], MACHINE)
    head, rule, *rows = table.splitlines()
    columns = [c.strip() for c in head.strip("|").split("|")]
    assert columns[4:8] == ["median s", "spread s", "load", "other CPUs busy"]
    assert rule.count("|") == head.count("|")
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert cells[0][2:9] == ["ours", "fp32", "1.100", "1.000-1.200", "0.3-0.9", "0.05", "1.05x"]
    assert cells[1][2:9] == ["openvino", "fp32", "1.150", "1.050-1.300", "0.9-1.2", "0.05", "1.00x"]
    assert all(len(c) == len(columns) for c in cells)


def test_load_meter_counts_others_not_the_timed_work() -> None:
    """Over a sleep, with nothing of ours running, the meter gives a load and a non-negative count of busy CPUs;
    a worker said to have used far more CPU than the machine had leaves nothing for the others."""
    import time

    meter = LoadMeter()
    meter.start()
    time.sleep(0.2)
    loads, others = meter.stop(0.2, 0.0)
    assert len(loads) == 2 and all(x >= 0 for x in loads)
    assert others is not None and others >= 0
    meter.start()
    time.sleep(0.2)
    assert meter.stop(0.2, worker_cpu=100.0)[1] == pytest.approx(0.0)


def test_peak_counts_avx512_halves_on_cpus_that_split_it() -> None:
    """Zen 4 runs a 512-bit FMA as two 256-bit halves: its fp32 peak is that of 8 lanes, not Intel's 16."""
    flags = ("avx2", "fma", "avx512f")
    whole = Machine(cpu="Intel", cores=2, flags=flags, ghz=2.0, ghz_source="assumed")
    split = Machine(cpu="AMD", cores=2, flags=flags, ghz=2.0, ghz_source="assumed", split_avx512=True)
    assert whole.peak_gflops == 2 * split.peak_gflops == 256.0
    assert "two 256-bit halves" in split.peak_formula() and "halves" not in whole.peak_formula()

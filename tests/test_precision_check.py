"""``python -m tools.precision_check``: int8 against fp32 for given weights on photographs, and auto's gate applied
to the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tools import precision_check
from tools.precision_check import Row, gate

CROPS = Path(__file__).resolve().parent / "data" / "quality"


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _row(loss: float, fp32_s: float, reduced_s: float) -> Row:
    return Row("m", "a.png", 29.0, 30.0, 30.0 - loss, 60.0, fp32_s, reduced_s, fp32_s, reduced_s)


def test_gate_needs_both_the_speed_up_and_the_accuracy():
    assert gate([_row(0.01, 1.2, 1.0), _row(0.03, 1.2, 1.0)], "int8")[0]  # 1.2x, 0.02 dB
    slow, words = gate([_row(0.0, 1.1, 1.0)], "int8")  # 1.1x: enough for bf16, not for int8
    assert not slow and "fails" in words and ">= 1.15x" in words
    assert gate([_row(0.0, 1.1, 1.0)], "bf16")[0]
    assert not gate([_row(0.06, 2.0, 1.0)], "int8")[0]  # twice as fast but 0.06 dB lost


def test_int8_of_the_bundled_x4_on_photographs(tmp_path, capsys):
    report = tmp_path / "rows.json"
    status = precision_check.main(
        ["hat-tiny-x4", "--images", str(CROPS), "--crop", "96", "--degrade", "pil", "--json", str(report)]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "| hat-tiny-x4 | coffee.png |" in out and "**mean**" in out
    assert "hat-tiny-x4: int8:" in out and "precision='auto' runs" in out
    rows = json.loads(report.read_text())
    assert len(rows) == 4
    for row in rows:
        assert abs(row["loss"]) < 0.05
        assert row["fp32_psnr"] > row["bicubic_psnr"]  # the trained model beats bicubic on each crop
        assert row["between"] is None or row["between"] > 45  # 8-bit outputs: equal, or a few values a step apart
        assert row["fp32_s"] > 0 and row["reduced_s"] > 0
    assert precision_check.main(["hat-tiny-x4", "--images", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err

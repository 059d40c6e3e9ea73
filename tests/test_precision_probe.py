"""`precision="auto"` on the CPU: the probe's decision, fed by a fake timing source, and its per-machine memory."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from hat_plugin import precision_probe
from hat_plugin.arch import HAT
from hat_plugin.device import resolve_precision
from hat_plugin.errors import OptionError
from hat_plugin.precision_probe import MAX_LOSS_DB, Choice, Trial, cpu_auto_precision, decide


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache folder, no pinned precision and no record read earlier in this process."""
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path))
    monkeypatch.delenv("HAT_PLUGIN_CPU_PRECISION", raising=False)
    precision_probe._in_process.cache_clear()
    precision_probe._in_process_loss.cache_clear()
    yield tmp_path
    precision_probe._in_process.cache_clear()
    precision_probe._in_process_loss.cache_clear()


class FakeTimer:
    """A timing source with fixed answers that counts how often the probe asks it."""

    def __init__(self, seconds: dict[str, float], loss: dict[str, float] | None = None) -> None:
        self.seconds, self.loss, self.calls = seconds, loss or {}, 0

    def __call__(self, precisions: Sequence[str]) -> list[Trial]:
        self.calls += 1
        return [Trial(p, self.seconds[p], self.loss.get(p, 0.0)) for p in precisions]


def test_decide_picks_the_fastest_precision_within_the_bound() -> None:
    trials = [Trial("fp32", 1.0, 0.0), Trial("bf16", 0.5, 0.01), Trial("fp16", 0.4, 0.02)]
    assert decide(trials).precision == "fp16"
    assert "2.5x faster" in decide(trials).reason


def test_decide_rejects_a_precision_that_loses_too_much() -> None:
    trials = [Trial("fp32", 1.0, 0.0), Trial("bf16", 0.5, MAX_LOSS_DB * 2), Trial("fp16", 0.8, 0.0)]
    assert decide(trials).precision == "fp16"
    trials[2] = Trial("fp16", 0.8, MAX_LOSS_DB + 1e-3)
    assert decide(trials).precision == "fp32"


def test_decide_keeps_fp32_when_a_half_type_is_not_clearly_faster() -> None:
    choice = decide([Trial("fp32", 1.0, 0.0), Trial("bf16", 0.95, 0.0)])
    assert choice.precision == "fp32"
    assert "bf16 1.05x the speed" in choice.reason


def test_no_native_half_type_means_fp32_without_timing() -> None:
    timer = FakeTimer({"fp32": 1.0})
    choice = cpu_auto_precision(measure=timer, candidates=[])
    assert (choice.precision, timer.calls) == ("fp32", 0)
    assert "no native" in choice.reason


def test_the_choice_is_remembered_per_machine(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timer = FakeTimer({"fp32": 1.0, "bf16": 0.4}, {"bf16": 0.01})
    first = cpu_auto_precision(measure=timer, candidates=["bf16"])
    assert (first.precision, timer.calls) == ("bf16", 1)
    record = fresh_cache / ".state" / "cpu-precision.json"
    saved = json.loads(record.read_text())
    assert [v["precision"] for v in saved.values()] == ["bf16"]

    precision_probe._in_process.cache_clear()  # as a new process would: read from the file, no new probe
    again = cpu_auto_precision(measure=timer, candidates=["bf16"])
    assert (again, timer.calls) == (first, 1)
    assert resolve_precision("auto", torch.device("cpu")) == torch.bfloat16

    monkeypatch.setattr(precision_probe, "machine_key", lambda threads: "another machine")
    slow = FakeTimer({"fp32": 1.0, "bf16": 2.0})
    assert cpu_auto_precision(measure=slow, candidates=["bf16"]).precision == "fp32"
    assert slow.calls == 1
    assert len(json.loads(record.read_text())) == 2


def test_a_damaged_record_is_probed_again(fresh_cache: Path) -> None:
    record = fresh_cache / ".state" / "cpu-precision.json"
    record.parent.mkdir(parents=True)
    record.write_text("{not json")
    timer = FakeTimer({"fp32": 1.0, "fp16": 0.5})
    assert cpu_auto_precision(measure=timer, candidates=["fp16"]).precision == "fp16"
    assert timer.calls == 1


def test_pinned_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    timer = FakeTimer({"fp32": 1.0})
    monkeypatch.setenv("HAT_PLUGIN_CPU_PRECISION", "bf16")
    assert cpu_auto_precision(measure=timer, candidates=["bf16"]) == Choice("bf16", "set by HAT_PLUGIN_CPU_PRECISION")
    assert timer.calls == 0
    monkeypatch.setenv("HAT_PLUGIN_CPU_PRECISION", "fp8")
    with pytest.raises(OptionError, match="HAT_PLUGIN_CPU_PRECISION"):
        cpu_auto_precision(measure=timer)


@pytest.mark.slow
def test_real_probe_on_this_cpu_is_honest() -> None:
    """The real feature probe and, where this CPU has a native half type or int8 kernels, the real measurement."""
    candidates = precision_probe.candidate_precisions()
    choice = cpu_auto_precision()
    assert choice.precision in ("fp32", *candidates)
    if candidates:
        assert {t.precision for t in choice.trials} == {"fp32", *candidates}
    else:
        assert choice.precision == "fp32" and not choice.trials


def test_accuracy_is_measured_on_the_probe_photograph() -> None:
    """The real accuracy source: bf16 of the trained tiny model loses a little PSNR-Y on the photo, fp32 none."""
    losses = precision_probe._accuracy_losses(["fp32", "bf16"])
    assert losses["fp32"] == 0.0
    assert 0.0 < losses["bf16"] < 0.5


def test_int8_needs_its_own_bar_of_speed() -> None:
    """int8 is taken only at 1.15x fp32 or more (a half type at 1.1x) and within the same accuracy bound."""
    assert decide([Trial("fp32", 1.0, 0.0), Trial("int8", 1 / 1.12, 0.0)]).precision == "fp32"
    assert decide([Trial("fp32", 1.0, 0.0), Trial("bf16", 1 / 1.12, 0.0)]).precision == "bf16"
    chosen = decide([Trial("fp32", 1.0, 0.0), Trial("int8", 1 / 1.2, 0.01)])
    assert chosen.precision == "int8" and "1.2x faster than fp32, 0.010 dB" in chosen.reason
    assert decide([Trial("fp32", 1.0, 0.0), Trial("int8", 0.5, MAX_LOSS_DB + 0.01)]).precision == "fp32"


def test_int8_is_a_candidate_where_pytorch_has_its_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    from hat_plugin import quantize

    assert "int8" in precision_probe.candidate_precisions()
    monkeypatch.setattr(quantize, "INT8_ENGINES", ("no-such-engine",))
    assert "int8" not in precision_probe.candidate_precisions()


def test_int8_accuracy_is_measured_on_the_probe_photograph() -> None:
    losses = precision_probe._accuracy_losses(["fp32", "int8"])
    assert 0.0 <= losses["int8"] < 0.05


def test_cli_says_which_precision_auto_chose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from hat_plugin.cli import EXIT_OK, main

    slow_half = FakeTimer({"fp32": 1.0, "bf16": 2.0})
    cpu_auto_precision(measure=slow_half, candidates=["bf16"])  # remembered for this machine, as a probe would
    Image.new("RGB", (20, 12), (200, 30, 90)).save(tmp_path / "in.png")
    code = main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", "hat-tiny-x4", "--device", "cpu"])
    assert code == EXIT_OK
    assert "in float32 (auto: measured: bf16 0.50x the speed" in capsys.readouterr().err


def _outlier_net() -> HAT:
    """hat-tiny-x4 with one MLP channel a thousand times louder (and the next layer a thousand times quieter on
    it): the kind of activation outlier trained transformers have, which int8's per-tensor activation scale rounds
    the other channels against."""
    from hat_plugin.checkpoint import load_model
    from hat_plugin.weights import resolve

    net = load_model(resolve("hat-tiny-x4"))
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.endswith("mlp.fc1"):
                module.weight[0] *= 1e3
                module.bias[0] *= 1e3
            elif name.endswith("mlp.fc2"):
                module.weight[:, 0] *= 1e-3
    return net


def test_auto_keeps_the_machine_choice_for_a_model_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from hat_plugin.checkpoint import load_model
    from hat_plugin.weights import resolve

    net = load_model(resolve("hat-tiny-x4"))
    machine = Choice("int8", "int8 1.30x fp32's speed")
    choice = precision_probe.auto_for_model(net, machine)
    assert choice.precision == "int8" and "this model loses 0.00" in choice.reason
    monkeypatch.setattr(precision_probe, "model_loss", lambda net, precision: pytest.fail("measured again"))
    assert precision_probe.auto_for_model(net, machine) == choice  # remembered in this process
    precision_probe._in_process_loss.cache_clear()
    assert precision_probe.auto_for_model(net, machine) == choice  # and in the cache folder, as a new process reads


def test_auto_runs_fp32_where_the_model_loses_too_much_in_the_machine_choice() -> None:
    net = _outlier_net()
    choice = precision_probe.auto_for_model(net, Choice("int8", "int8 1.30x fp32's speed"))
    assert choice.precision == "fp32"
    loss = float(choice.reason.split(" loses ")[1].split(" dB")[0])
    assert loss > MAX_LOSS_DB and "int8" in choice.reason and "this model" in choice.reason


def test_the_engine_takes_the_model_checked_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from hat_plugin import Upscaler

    monkeypatch.setattr(precision_probe, "cpu_auto_precision", lambda: Choice("int8", "int8 1.30x fp32's speed"))
    engine = Upscaler(_outlier_net(), device="cpu", precision="auto")
    assert engine.dtype == torch.float32 and "int8 loses" in engine.precision_reason
    pinned = Upscaler(_outlier_net(), device="cpu", precision="int8")  # asked for by name: no check
    assert pinned.dtype == torch.qint8 and pinned.precision_reason == ""


def test_a_pinned_or_fp32_choice_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_probe, "model_loss", lambda net, precision: pytest.fail("checked"))
    net = _outlier_net()
    assert precision_probe.auto_for_model(net, Choice("fp32", "measured")).precision == "fp32"
    pinned = Choice("int8", "set by HAT_PLUGIN_CPU_PRECISION")
    assert precision_probe.auto_for_model(net, pinned) == pinned

"""The CPU side of the GPU work: the runners' bookkeeping and CPU fallbacks, padded attention heads, the GPU check's
command line, budget, report and verdicts, and the wheel list for the GPU machine. (The CUDA paths themselves are
tested by tests/test_cuda*.py on a GPU.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_check, gpu_wheels
from hat_plugin import HAT, HATConfig, OptionError, Upscaler
from hat_plugin.options import EngineOptions
from hat_plugin.runners import ShapeSlots, make_runner

RUNNER_ENV = "HAT_PLUGIN_CUDA_RUNNER"

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


# ---- runners ------------------------------------------------------------------------------------------------------


def test_shape_slots_make_on_the_second_sighting_and_keep_the_most_recent() -> None:
    slots: ShapeSlots[str] = ShapeSlots(keep=2, after=2)
    assert not slots.due("a") and slots.due("a")  # made on the second sighting
    assert slots.put("a", "A") == [] and slots.get("a") == "A"
    for key in ("b", "c"):
        slots.due(key)
        assert slots.due(key)
        slots.put(key, key.upper())
    assert slots.get("a") is None and slots.get("b") == "B" and len(slots) == 2  # "a" was least recently used
    slots.fail("d")
    assert not slots.due("d") and not slots.due("d")


def test_runner_names_and_the_cpu_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNNER_ENV, raising=False)
    assert EngineOptions.from_environment().runner == "eager" and EngineOptions(runner=" Graphs ").runner == "graphs"
    monkeypatch.setenv(RUNNER_ENV, "warp")
    with pytest.raises(OptionError, match="HAT_PLUGIN_CUDA_RUNNER='warp' is not a runner"):
        EngineOptions.from_environment()
    with pytest.raises(OptionError, match="unknown runner 'warp'") as caught:
        EngineOptions(runner="warp")
    assert caught.value.option == "runner"
    model = HAT(HATConfig(embed_dim=16, depths=(1,), num_heads=(2,), window_size=8, upscale=2, squeeze_factor=4))
    assert make_runner(model, torch.device("cpu"), "eager") is None
    with pytest.warns(RuntimeWarning, match="needs a CUDA device; running eagerly on cpu"):
        assert make_runner(model, torch.device("cpu"), "graphs") is None
    monkeypatch.setenv(RUNNER_ENV, "compile")
    with pytest.warns(RuntimeWarning, match="needs a CUDA device"):
        up = Upscaler(model, device="cpu")
    x = torch.rand(1, 3, 12, 20)
    monkeypatch.setenv(RUNNER_ENV, "eager")
    assert torch.equal(up.upscale_tensor(x), Upscaler(model, device="cpu").upscale_tensor(x))


def test_padded_attention_heads_give_the_same_output() -> None:
    """30-channel heads (as in HAT and HAT-L) zero-padded to 32: the same function, up to float rounding."""
    torch.manual_seed(0)
    model = HAT(HATConfig(embed_dim=60, depths=(2,), num_heads=(2,), window_size=8, upscale=2, num_feat=16)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0, 0.5)
    x = torch.rand(1, 3, 20, 28)
    with torch.inference_mode():
        plain = model(x)
        model.pad_heads = True
        padded = model(x)
    assert (plain - padded).abs().max().item() <= 1e-5


# ---- the check ----------------------------------------------------------------------------------------------------


def test_check_script_syntax_and_usage_errors(tmp_path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    help_text = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert help_text.returncode == 0 and "OUTDIR [--quick] [--device cpu]" in help_text.stdout
    for args, message in (
        ([], "give the folder for the results"),
        ([str(tmp_path), "--bogus"], "unknown option --bogus"),
        ([str(tmp_path), "--device", "tpu"], "--device must be cuda, cuda:N or cpu"),
        ([str(tmp_path), str(tmp_path / "b")], "one OUTDIR only"),
    ):
        result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_budgets_fit_the_device_time() -> None:
    """Full under 8 minutes and quick under 3 on the GPU machine, the wheels' install and start-up included."""
    assert gpu_check.BUDGET["full"] <= 450 and gpu_check.BUDGET["quick"] <= 165
    quick = dict(gpu_check.plan("quick"))
    assert sum(quick.values()) <= gpu_check.BUDGET["quick"]
    assert quick["pytest"] > 0 and quick["speed"] > 0
    full = dict(gpu_check.plan("full"))
    assert all(full[name] > 0 for name in gpu_check.STEP_NAMES)
    text = SCRIPT.read_text(encoding="utf-8")
    assert "total=175" in text and "total=470" in text  # the outer limits of gpu_check.sh, with their margins


def test_report_counts_tests_and_judges_targets(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_a" time="1.5"/>'
        '<testcase classname="tests.test_cuda" name="test_b" time="0.1"><failure message="boom">trace</failure>'
        "</testcase>"
        '<testcase classname="tests.test_cuda" name="test_c" time="0"><skipped message="needs a CUDA GPU"/>'
        "</testcase></testsuite></testsuites>",
        encoding="utf-8",
    )
    tests = gpu_check.parse_junit(junit)
    assert tests["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}
    assert tests["cases"][1] == {"test": "tests/test_cuda.py::test_b", "outcome": "failed", "message": "boom",
                                 "seconds": 0.1}  # fmt: skip

    def row(case: str, config: str, ms: float) -> dict:
        measured = {"median_ms": ms, "fps": 1000 / ms, "tflops": 1.0, "pct_datasheet": 0.1, "peak_mb": 10.0}
        extra = {"warmup_s": 1.0, "max_diff": 0.0, "reference": "ours fp32 eager"}
        return {"case": case, "config": config, "impl": config.split()[0], **measured, **extra}

    speed = [
        row("HAT-S_SRx4 256x256 -> 1024x1024", "ours fp32 eager", 100),
        row("HAT-S_SRx4 256x256 -> 1024x1024", "ours fp16 eager", 40),
        row("HAT-S_SRx4 256x256 -> 1024x1024", "spandrel bf16", 50),
        row("HAT-S_SRx4 480x270 -> 1920x1080", "ours fp16 eager", 60),
        row("HAT_SRx4 480x270 -> 1920x1080", "ours fp16 eager", 90),
    ]
    runners = [row("HAT-S_SRx4 480x270 -> 1920x1080", "ours fp16 graphs", 45)]
    verdicts = {t["target"]: t for t in gpu_check.targets(speed, runners)}
    assert verdicts["HAT-S x4 256x256: ours fp16 >= 2x ours fp32"]["met"] is True  # 2.5x
    assert verdicts["HAT-S x4 256x256: ours fp16 >= 1.5x spandrel's best (spandrel bf16)"]["met"] is False  # 1.25x
    assert verdicts["HAT-S x4 480x270 -> 1920x1080, fp16 eager: >= 20 fps"]["met"] is False  # 16.7 fps
    assert verdicts["HAT-S x4 480x270, best of ours (ours fp16 graphs): >= 20 fps"]["met"] is True  # 22.2 fps
    assert verdicts["HAT x4 480x270 -> 1920x1080, fp16 eager: >= 10 fps"]["met"] is True
    report = gpu_check.render(
        {
            "mode": "full",
            "device": "cuda",
            "command": "x",
            "started": "now",
            "seconds": 1,
            "budget_s": 450,
            "python": "p",
            "install": "i",
            "steps": [],
            "tests": tests | {"marker": "cuda"},
            "speed": speed,
            "targets": list(verdicts.values()),
        }  # fmt: skip
    )
    assert "| `tests/test_cuda.py::test_b` | boom |" in report and "| ours fp16 graphs |" not in report
    assert "| HAT-S x4 256x256: ours fp16 >= 1.5x spandrel's best (spandrel bf16) | 1.25 | **no** |" in report


@pytest.mark.slow
def test_dry_run_of_the_environment_step(tmp_path: Path) -> None:
    """The script end to end on the CPU, its cheapest step: both report files written and consistent."""
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    env["HAT_CHECK_SITE"] = str(tmp_path / "site")  # where carried wheels (if .whl/ has any) are installed
    result = subprocess.run(
        [str(SCRIPT), str(out), "--device", "cpu", "--steps", "env"], capture_output=True, text=True, env=env,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [(s["name"], s["status"]) for s in results["steps"]] == [("env", "passed")]
    assert results["env"]["torch"] == torch.__version__ and results["mode"] == "cpu"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| environment and ceilings | **passed** |" in report
    assert "===== env:" in (out / "log.txt").read_text(encoding="utf-8")


# ---- wheels for the GPU machine -------------------------------------------------------------------------------------


def test_wheel_list_is_what_the_gpu_machine_lacks() -> None:
    needed = gpu_wheels.needed_by_the_check()
    assert {"torch", "numpy", "vapoursynth", "spandrel", "pytest", "pytest-timeout"} <= set(needed)
    missing = gpu_wheels.missing_on_gpu_machine(needed)
    assert {"vapoursynth", "platformdirs", "pypng", "spandrel"} <= set(missing)
    assert not {"torch", "numpy", "pillow", "safetensors", "pytest", "pytest-timeout"} & set(missing)
    assert gpu_wheels.missing_on_gpu_machine(["einops", "typing_extensions", "Torch"]) == []

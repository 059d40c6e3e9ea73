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

from bench import gpu_check, gpu_rehearsal, gpu_wheels
from hat_plugin import HAT, HATConfig, OptionError, Upscaler, runners
from hat_plugin.options import EngineOptions
from hat_plugin.runners import RunnerFallback, ShapeSlots, make_runner

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
    monkeypatch.setattr(runners, "STRICT", False)  # the fallback itself: a warning and eager
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


def test_strict_runners_raise_instead_of_falling_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs strict (conftest): a runner that cannot run as asked is an error, not a warning."""
    assert runners.STRICT
    model = HAT(HATConfig(embed_dim=16, depths=(1,), num_heads=(2,), window_size=8, upscale=2, squeeze_factor=4))
    for name in ("graphs", "compile"):
        with pytest.raises(RunnerFallback, match="needs a CUDA device"):
            make_runner(model, torch.device("cpu"), name)
    monkeypatch.setenv(RUNNER_ENV, "graphs")
    with pytest.raises(RunnerFallback):
        Upscaler(model, device="cpu")
    with pytest.warns(RuntimeWarning):  # an explicit strict=False still falls back
        assert make_runner(model, torch.device("cpu"), "graphs", strict=False) is None


def test_compile_is_unavailable_without_a_compiler_or_headers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert "no C compiler" in (runners.compile_unavailable() or "")
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n", encoding="utf-8")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setattr(runners.sysconfig, "get_paths", lambda: {"include": str(tmp_path / "include")})
    assert "no Python headers" in (runners.compile_unavailable() or "")
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "Python.h").write_text("", encoding="utf-8")
    assert runners.compile_unavailable() is None


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


def test_pytest_verdicts_on_the_cpu_and_the_gpu() -> None:
    def tests(*cases: tuple[str, str]) -> dict:
        rows = [{"test": f"t{i}", "outcome": o, "message": m, "seconds": 0.0} for i, (o, m) in enumerate(cases)]
        return {"cases": rows, "counts": gpu_check._count(rows)}

    cpu_part = ("skipped", "fp16 on CUDA: needs a CUDA GPU (torch.cuda.is_available() is False)")
    clean = tests(("passed", ""), cpu_part)
    assert gpu_check.judge_tests("passed", "", clean, "cpu", True) == ("passed", "1 passed, 1 skipped")
    status, note = gpu_check.judge_tests("passed", "", clean, "cuda", True)  # on the GPU nothing may skip
    assert status == "incomplete" and "skipped: fp16 on CUDA" in note
    no_vs = tests(("passed", ""), ("skipped", "needs VapourSynth (carry its wheel to the GPU machine)"))
    assert gpu_check.judge_tests("passed", "", no_vs, "cpu", True)[0] == "incomplete"
    assert gpu_check.judge_tests("passed", "", clean, "cpu", False)[0] == "incomplete"  # test_cuda_vs.py not run
    assert gpu_check.judge_tests("passed", "", tests(cpu_part), "cpu", True)[0] == "failed"  # nothing passed
    assert gpu_check.judge_tests("failed", "boom", clean, "cpu", True)[0] == "failed"
    timed = gpu_check.judge_tests(
        "timed out", "stopped after 90 s", tests(("passed", ""), ("skipped", "")), "cpu", True
    )
    assert timed == ("timed out", "1 passed, 1 skipped; skipped: reason not recorded (the run was stopped); "
                     "stopped after 90 s")  # fmt: skip


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


def test_the_image_python_has_the_image_and_nothing_else(tmp_path: Path) -> None:
    """The rehearsal's fresh environment sees torch (the image has it) but not what only the wheels bring."""
    python = gpu_rehearsal.image_python(tmp_path)
    env = gpu_rehearsal.offline_env(tmp_path, python)
    names = ("torch", "numpy", "pytest", "spandrel", "vapoursynth", "platformdirs", "av", "hat_plugin")
    probe = f"import importlib.util as u; print([m for m in {names!r} if u.find_spec(m)])"
    found = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    )
    assert found.stdout.strip() == "['torch', 'numpy', 'pytest']", found.stdout + found.stderr


@pytest.mark.slow
def test_rehearsal_of_the_first_run_offline(tmp_path: Path) -> None:
    """The whole check with --device cpu as the GPU machine runs it: a fresh Python holding only the image's
    packages, the carried wheels installed with pip --no-index, no network. Every step of the mode must pass."""
    out = tmp_path / "out"
    code = gpu_rehearsal.rehearse(out, quick=True, timeout=300)
    report = (out / "report.md").read_text(encoding="utf-8") if (out / "report.md").exists() else "no report"
    assert code == 0, report
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    statuses = {s["name"]: s["status"] for s in results["steps"]}
    assert statuses == {name: "passed" for name in gpu_check.STEP_NAMES if name != "compile"} | {"compile": "left out"}
    assert results["install"].startswith(f"installed {len(gpu_wheels.load_record()['wheels'])} into")
    assert results["tests"]["counts"]["passed"] > 0 and results["passed"] is True


# ---- wheels for the GPU machine -------------------------------------------------------------------------------------


def test_wheel_list_is_what_the_gpu_machine_lacks() -> None:
    needed = gpu_wheels.needed_by_the_check()
    assert {"torch", "numpy", "vapoursynth", "spandrel", "pytest", "pytest-timeout"} <= set(needed)
    assert not {"openvino", "onnxruntime", "onnx", "onnxscript", "av"} & set(needed)  # never run by the check
    missing = gpu_wheels.missing_on_gpu_machine(needed)
    assert {"vapoursynth", "platformdirs", "pypng", "spandrel"} <= set(missing)
    assert not {"torch", "numpy", "pillow", "safetensors", "pytest", "pytest-timeout"} & set(missing)
    assert gpu_wheels.missing_on_gpu_machine(["einops", "typing_extensions", "Torch"]) == []
    assert gpu_wheels.carried_set(["a", "torch"], {"a": ["b", "numpy"], "b": ["a"]}) == ["a", "b"]


def test_recorded_wheels_are_the_computed_set_and_fit_one_device_call() -> None:
    """The set pyproject.toml asks for (computed as gpu_wheels.py does) is the recorded one, and the tracked tree
    plus the recorded wheel sizes stay MARGIN under what a device call may carry; the docs show that record."""
    record = gpu_wheels.load_record()
    recorded = sorted(w["name"] for w in record["wheels"])
    computed = gpu_wheels.carried_set(gpu_wheels.needed_by_the_check(), record["requires"])
    assert computed == recorded, "the wheel set changed: run python bench/gpu_wheels.py --record"
    wheels = sum(w["bytes"] for w in record["wheels"])
    tree = gpu_wheels.tracked_size()
    assert tree + wheels + gpu_wheels.MARGIN <= gpu_wheels.TREE_LIMIT, (
        f"tree {tree / 2**20:.1f} MiB + wheels {wheels / 2**20:.1f} MiB leave less than "
        f"{gpu_wheels.MARGIN / 2**20:.0f} MiB of the {gpu_wheels.TREE_LIMIT / 2**20:.0f} MiB a device call carries"
    )
    docs = gpu_wheels.DOCS.read_text(encoding="utf-8")
    assert gpu_wheels.render_docs(record) in docs, "docs/benchmarks.md: run python bench/gpu_wheels.py --record"

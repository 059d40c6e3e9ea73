"""The GPU check's steps, each in its own process under its own time limit, and its report.

Run it through ``bench/gpu_check.sh OUTDIR [--quick] [--device cpu]`` (which first installs the carried wheels).
Steps, most important first (a step that fails or times out is recorded and the next one runs):

1. ``env``: versions, the GPU, and its measured ceilings (``bench.gpu_env``);
2. ``shim``: build the VapourSynth shim (needs VapourSynth and a C compiler; else the VS parts are not available);
3. ``pytest``: ``pytest -m cuda`` on tests/test_cuda.py and tests/test_cuda_vs.py;
4. ``speed``: ours against spandrel (``bench.gpu_speed --part speed``);
5. ``runners``: eager against CUDA graphs and the other switches (``--part runners``);
6. ``vs_fps``: the VapourSynth filter's frames per second, 480x270 -> 1920x1080, num_streams 1/2/4, fp16;
7. ``compile``: torch.compile(mode="max-autotune") against eager (``--part compile``), with the time that is left.

OUTDIR receives report.md, results.json, log.txt (every step's output) and junit.xml: four files, as the device
tool brings back at most eight. Both report files are rewritten after every step, so a run stopped from outside
still leaves what it measured.

Each step ends as one of ``STATUSES``; the check passes (exit 0) only when every step of its mode passed.
"Not available" says what is missing (VapourSynth, a C compiler, Python's headers for Triton: checked before the
steps run); "incomplete" says what did not run (skipped tests, configurations not measured). A step outside the
mode (the compile step of a CPU dry run, say) is "left out" and does not count.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Seconds for all steps of a GPU check (full: under 8 minutes with the wheels' install, quick: under 3) and of the
# CPU dry run; gpu_check.sh adds a margin of its own around them.
BUDGET = {"full": 450.0, "quick": 160.0, "cpu": 540.0}
LOG_TAIL = 200_000  # characters of each step's output kept in log.txt
STEP_NAMES = ("env", "shim", "pytest", "speed", "runners", "vs_fps", "compile")
STATUSES = ("passed", "failed", "timed out", "incomplete", "not available", "not run", "left out")
OK = ("passed", "left out")  # every other status makes the check fail
CPU_SKIP = "needs a CUDA GPU"  # the one skip reason a CPU dry run expects (test_cuda.needs_cuda)


@dataclass
class Step:
    """One step and the most it may take in each mode (0: left out in that mode)."""

    name: str
    title: str
    full: float
    quick: float
    cpu: float

    def limit(self, mode: str) -> float:
        return float(getattr(self, mode))


STEPS = (
    Step("env", "environment and ceilings", 40, 15, 60),
    Step("shim", "VapourSynth shim build", 30, 10, 60),
    Step("pytest", "pytest -m cuda", 210, 105, 120),
    Step("speed", "speed: ours vs spandrel", 120, 30, 150),
    Step("runners", "CUDA runners vs eager", 50, 0, 120),
    Step("vs_fps", "VapourSynth filter fps", 45, 0, 60),
    Step("compile", "torch.compile(max-autotune)", 150, 0, 0),  # last: gets what is left of the budget
)


def mode_of(quick: bool, device: str) -> str:
    """``cpu`` for a dry run on the CPU (quick or not), else ``quick`` or ``full``."""
    return "cpu" if device == "cpu" else "quick" if quick else "full"


def plan(mode: str) -> list[tuple[str, float]]:
    """(step, limit) in running order; a limit of 0 means the step is left out in that mode."""
    return [(s.name, s.limit(mode)) for s in STEPS]


@dataclass
class Outcome:
    name: str
    title: str
    status: str = "not run"  # one of STATUSES
    seconds: float = 0.0
    limit: float = 0.0
    returncode: int | None = None
    note: str = ""


@dataclass
class Check:
    """The state of one check run: options, step outcomes and the figures gathered so far."""

    out: Path
    work: Path
    quick: bool
    device: str
    python: str
    install: str
    only: set[str]
    command: str
    started: float = field(default_factory=time.time)
    outcomes: list[Outcome] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    compile_missing: str | None = None  # why torch.compile cannot build here, checked before the steps

    @property
    def mode(self) -> str:
        return mode_of(self.quick, self.device)

    @property
    def deadline(self) -> float:
        return self.started + BUDGET[self.mode]

    # ---- running ---------------------------------------------------------------------------------------------

    def run(self, step: Step, argv: list[str], env: dict[str, str] | None = None) -> Outcome:
        """Run ``argv`` under the step's limit (cut to the time left), its output appended to log.txt."""
        outcome = Outcome(step.name, step.title)
        self.outcomes.append(outcome)
        limit = min(step.limit(self.mode), self.deadline - time.time())
        outcome.limit = round(max(limit, 0), 1)
        if step.limit(self.mode) == 0:
            outcome.status, outcome.note = "left out", f"not part of the {self.mode} check"
            return outcome
        if limit < 10:
            outcome.status, outcome.note = "not run", "no time left in the check's budget"
            return outcome
        print(f"== {step.name}: {' '.join(argv)} (limit {limit:.0f} s)", flush=True)
        log = self.work / f"{step.name}.log"
        begin = time.time()
        with log.open("w", encoding="utf-8", errors="replace") as sink:
            proc = subprocess.Popen(
                argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            try:
                outcome.returncode = proc.wait(timeout=limit)
                outcome.status = "passed" if outcome.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                _stop(proc)
                outcome.status, outcome.note = "timed out", f"stopped after {limit:.0f} s"
        outcome.seconds = round(time.time() - begin, 1)
        text = log.read_text(encoding="utf-8", errors="replace")
        with (self.out / "log.txt").open("a", encoding="utf-8") as f:
            f.write(f"\n===== {step.name}: {' '.join(argv)}\n")
            f.write(f"===== {outcome.status} in {outcome.seconds} s (limit {outcome.limit} s)\n")
            f.write(text[-LOG_TAIL:] if len(text) > LOG_TAIL else text)
        if outcome.status == "failed" and not outcome.note:
            outcome.note = _last_line(text)
        return outcome

    def set_aside(self, step: Step, status: str, why: str) -> Outcome:
        """Record ``step`` as not run, with ``status`` (not available, left out) and the reason."""
        outcome = Outcome(step.name, step.title, status=status, note=why)
        self.outcomes.append(outcome)
        return outcome

    def save(self) -> None:
        """Write results.json and report.md (atomically) with what is known now."""
        results = {
            "command": self.command,
            "mode": self.mode,
            "device": self.device,
            "python": self.python,
            "install": self.install,
            "started": datetime.datetime.fromtimestamp(self.started, datetime.UTC).isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 1),
            "budget_s": BUDGET[self.mode],
            "steps": [asdict(o) for o in self.outcomes],
            "passed": all(o.status in OK for o in self.outcomes),
            **self.data,
        }
        _write(self.out / "results.json", json.dumps(results, indent=1, default=str))
        _write(self.out / "report.md", render(results))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the step's whole process group: TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- the steps -------------------------------------------------------------------------------------------------


def step_env(check: Check, step: Step) -> None:
    target = check.work / "env.json"
    outcome = check.run(step, [check.python, "-m", "bench.gpu_env", "--json", str(target), "--device", check.device])
    if target.exists():
        env = json.loads(target.read_text(encoding="utf-8"))
        check.data["env"] = env
        if check.device.startswith("cuda") and not env.get("cuda_available"):
            outcome.status, outcome.note = "failed", "torch.cuda.is_available() is False on this machine"


def step_shim(check: Check, step: Step) -> bool:
    """Build the shim; True when the VapourSynth parts can run."""
    code = "import sys; from pathlib import Path; from vs_filter import build; print(build.build(Path(sys.argv[1])))"
    outcome = check.run(step, [check.python, "-c", code, str(check.work / "shim")])
    if outcome.status == "failed":
        text = (check.work / "shim.log").read_text(encoding="utf-8", errors="replace")
        if "No module named 'vapoursynth'" in text:
            outcome.status, outcome.note = "not available", "VapourSynth is not installed (carry its wheel)"
        elif "no C compiler found" in text:
            outcome.status, outcome.note = "not available", "no C compiler on this machine"
    return outcome.status == "passed"


def step_pytest(check: Check, step: Step, with_vs: bool) -> None:
    files = ["tests/test_cuda.py"] + (["tests/test_cuda_vs.py"] if with_vs else [])
    junit = check.work / "junit.xml"
    marker = "cuda and not slow" if check.quick else "cuda"
    argv = [check.python, "-m", "pytest", "-m", marker, *files, "-v", "-rs", "-p", "no:cacheprovider"]
    argv += ["--junitxml", str(junit), "--timeout", "150"]
    outcome = check.run(step, argv)
    tests = parse_junit(junit) if junit.exists() else parse_verbose(check.work / "pytest.log")
    tests["files"], tests["marker"] = files, marker
    if not with_vs:
        tests["not_run"] = "tests/test_cuda_vs.py: the shim step did not pass"
    check.data["tests"] = tests
    if junit.exists():
        shutil.copy(junit, check.out / "junit.xml")
    outcome.status, outcome.note = judge_tests(outcome.status, outcome.note, tests, check.device, with_vs)


def judge_tests(status: str, note: str, tests: dict, device: str, with_vs: bool) -> tuple[str, str]:
    """The pytest step's status and note: a clean run is "incomplete" when a test was skipped for another reason
    than the CPU's "needs a CUDA GPU" (on the GPU: for any reason) or test_cuda_vs.py could not run, and "failed"
    when no test passed at all."""
    counts = tests["counts"]
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    expected = CPU_SKIP if device == "cpu" else None  # the CPU runs each test's CPU part and skips the CUDA rest
    unexpected = sorted(
        {
            t["message"] or "reason not recorded (the run was stopped)"
            for t in tests["cases"]
            if t["outcome"] == "skipped" and not (expected and expected in t["message"])
        }
    )
    if status == "passed" and not counts["passed"]:
        status = "failed"
        unexpected.insert(0, "no test passed")
    elif status == "passed" and (unexpected or not with_vs):
        status = "incomplete"
    notes = [summary, *(f"skipped: {m}" for m in unexpected), tests.get("not_run", "")]
    notes.append(note if status == "timed out" else "")
    return status, "; ".join(n for n in notes if n)


def step_bench(check: Check, step: Step, part: str) -> None:
    rows_file = check.work / f"{part}.jsonl"
    limit = min(step.limit(check.mode), check.deadline - time.time())
    startup = 25 if check.device == "cpu" else 12  # importing torch, making weights; the rest is the bench's
    budget = max(limit - startup, 5)
    argv = [check.python, "-m", "bench.gpu_speed", "--part", part, "--out", str(rows_file)]
    argv += ["--device", check.device, "--budget", f"{budget:.0f}"] + (["--quick"] if check.quick else [])
    outcome = check.run(step, argv)
    rows = _rows(rows_file)
    check.data[part] = rows
    measured = len([r for r in rows if "median_ms" in r])
    errors = [f"{r['case']} {r.get('config', '')}: {r['error']}" for r in rows if "error" in r]
    unmeasured = [f"{r['case']}: {r['skipped']}" for r in rows if "skipped" in r]
    if outcome.status == "passed" and (errors or not measured):
        outcome.status = "failed"
    elif outcome.status == "passed" and unmeasured:
        outcome.status = "incomplete"
    notes = [f"{measured} configurations measured", *errors, *unmeasured, outcome.note]
    outcome.note = "; ".join(n for n in notes if n)


def step_vs_fps(check: Check, step: Step) -> None:
    target = check.work / "vs_fps.json"
    argv = [check.python, "-m", "bench.bench_vs", "--json", str(target), "--device", check.device]
    if check.device == "cpu":
        argv += ["--frames", "2" if check.quick else "4", "--repeat", "1", "--streams", "1", "2"]
    else:
        argv += ["--random-preset", "HAT-S_SRx4", "--width", "480", "--height", "270", "--precision", "fp16"]
        argv += ["--streams", "1", "2", "4", "--frames", "24", "--repeat", "2", "--threads", "8"]
    check.run(step, argv)
    if target.exists():
        check.data["vs_fps"] = json.loads(target.read_text(encoding="utf-8"))


# ---- results ---------------------------------------------------------------------------------------------------


def parse_junit(path: Path) -> dict:
    """Per-test outcomes and counts from pytest's JUnit XML."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            child = case.find(kind)
            if child is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = (
                    (child.get("message") or child.text or "").strip().splitlines()[0][:300]
                    if (child.get("message") or child.text)
                    else ""
                )
                break
        cases.append({"test": test, "outcome": outcome, "message": message, "seconds": float(case.get("time", 0))})
    return {"cases": cases, "counts": _count(cases)}


def parse_verbose(log: Path) -> dict:
    """Outcomes from ``pytest -v`` lines, for a run stopped before it wrote its XML."""
    cases = []
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "::" in parts[0] and parts[1] in ("PASSED", "FAILED", "SKIPPED", "ERROR"):
            outcome = {"PASSED": "passed", "FAILED": "failed", "SKIPPED": "skipped", "ERROR": "error"}[parts[1]]
            cases.append({"test": parts[0], "outcome": outcome, "message": "", "seconds": 0.0})
    return {"cases": cases, "counts": _count(cases), "partial": True}


def _count(cases: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(("passed", "failed", "error", "skipped"), 0)
    for c in cases:
        counts[c["outcome"]] += 1
    return counts


def targets(speed: list[dict], runners: list[dict]) -> list[dict]:
    """The issue's speed targets, judged from the measured rows (the default configuration: eager, fp16)."""
    rows = [r for r in speed + runners if "median_ms" in r]

    def ms(case: str, config: str) -> float | None:
        found = [r["median_ms"] for r in rows if r["case"].startswith(case) and r["config"] == config]
        return min(found) if found else None

    def best(case: str, impl: str) -> dict | None:
        found = [r for r in rows if r["case"].startswith(case) and r["impl"] == impl]
        return min(found, key=lambda r: r["median_ms"]) if found else None

    out = []
    fp16, fp32 = ms("HAT-S_SRx4 256x256", "ours fp16 eager"), ms("HAT-S_SRx4 256x256", "ours fp32 eager")
    peer = best("HAT-S_SRx4 256x256", "spandrel")
    out.append(_target("HAT-S x4 256x256: ours fp16 >= 2x ours fp32", fp32 / fp16 if fp16 and fp32 else None, 2.0))
    out.append(
        _target(
            f"HAT-S x4 256x256: ours fp16 >= 1.5x spandrel's best ({peer['config'] if peer else '-'})",
            peer["median_ms"] / fp16 if peer and fp16 else None,
            1.5,
        )
    )
    for preset, label, goal in (("HAT-S_SRx4", "HAT-S", 20.0), ("HAT_SRx4", "HAT", 10.0)):
        case = f"{preset} 480x270"
        default = ms(case, "ours fp16 eager")
        out.append(
            _target(f"{label} x4 480x270 -> 1920x1080, fp16 eager: >= {goal:g} fps", default and 1000 / default, goal)
        )
        top = best(case, "ours")
        if top:
            out.append(
                _target(f"{label} x4 480x270, best of ours ({top['config']}): >= {goal:g} fps", top["fps"], goal)
            )
    return out


def _target(what: str, value: float | None, goal: float) -> dict:
    return {"target": what, "value": value, "goal": goal, "met": None if value is None else value >= goal}


def render(results: dict) -> str:
    """The Markdown report."""
    env = results.get("env") or {}
    gpu = env.get("gpu") or {}
    lines = [
        f"# GPU check ({results['mode']}) on {gpu.get('name') or results['device']}",
        "",
        f"`{results['command']}`, started {results['started']} (UTC), {results['seconds']} s of a "
        f"{results['budget_s']:.0f} s budget. Python `{results['python']}`. Wheels: {results['install']}.",
        "",
        "| step | status | seconds | limit | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['title']} | **{s['status']}** | {s['seconds']} | {s['limit']} | {s['note'].replace('|', '/')} |"
        for s in results["steps"]
    ]
    not_ok = [f"{s['name']} {s['status']}" for s in results["steps"] if s["status"] not in OK]
    if results["steps"]:
        verdict = f"**Check not passed** ({', '.join(not_ok)})." if not_ok else "**Check passed**: every step passed."
        lines += ["", verdict]
    if env:
        lines += ["", "## Environment", ""]
        lines.append(
            f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), Python "
            f"{env.get('python')}, {env.get('cpu_count')} CPUs, packages {env.get('packages')}, C compiler "
            f"{env.get('cc') or 'none'}."
        )
        if gpu:
            lines.append(
                f"GPU {gpu['name']} (sm {gpu['capability']}, {gpu['multiprocessors']} SMs, {gpu['memory_gib']} GiB, "
                f"L2 {gpu['l2_mib']} MiB); nvidia-smi: `{gpu['nvidia_smi']}`."
            )
        sheet, measured = env.get("datasheet"), env.get("measured")
        if sheet:
            lines.append(
                f"Dense peaks used for '% of peak' (TFLOP/s): bf16 {sheet['bf16']}, fp16 {sheet['fp16']}, "
                f"tf32 {sheet['tf32']}, fp32 {sheet['fp32']}; source: {sheet['source']}."
            )
        if measured:
            lines.append(
                "Measured here: matmul "
                + ", ".join(f"{k.split('_')[1]} {v:.0f} TFLOP/s" for k, v in measured.items() if "tflops" in k)
                + f"; device copy {measured['device_copy_gbps']:.0f} GB/s (read+write); pinned H2D "
                f"{measured['h2d_pinned_gbps']:.1f} GB/s, D2H {measured['d2h_pinned_gbps']:.1f} GB/s."
            )
    tests = results.get("tests")
    if tests:
        c = tests["counts"]
        lines += ["", "## Tests: pytest -m " + tests["marker"], ""]
        lines.append(
            f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, {c['skipped']} skipped"
            + (" (partial: the run was stopped)" if tests.get("partial") else "")
            + (f"; {tests['not_run']}" if tests.get("not_run") else "")
            + "."
        )
        bad = [t for t in tests["cases"] if t["outcome"] in ("failed", "error")]
        if bad:
            lines += ["", "| failed test | message |", "|---|---|"]
            lines += [f"| `{t['test']}` | {t['message'].replace('|', '/')} |" for t in bad]
        reasons = sorted({t["message"] for t in tests["cases"] if t["outcome"] == "skipped"})
        if reasons:
            lines += ["", "Skip reasons: " + "; ".join(reasons)]
    for part, heading in (("speed", "Speed: ours vs spandrel"), ("runners", "Runners"), ("compile", "torch.compile")):
        rows = results.get(part) or []
        if rows:
            lines += ["", f"## {heading}", "", *speed_table(rows)]
    vs_fps = results.get("vs_fps")
    if vs_fps:
        lines += ["", "## VapourSynth filter", ""]
        lines.append(
            f"{vs_fps['model']}, {vs_fps['width']}x{vs_fps['height']} input, {vs_fps['frames']} frames, median of "
            f"{vs_fps['repeat']}; {vs_fps['machine']}."
        )
        lines += ["", "| requests | precision | num_streams | frames/s |", "|---|---|---|---|"]
        lines += [f"| {r['mode']} | {r['precision']} | {r['streams']} | {r['fps']:.2f} |" for r in vs_fps["rows"]]
    goals = results.get("targets") or []
    if goals:
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in goals:
            value = "-" if t["value"] is None else f"{t['value']:.2f}"
            met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {value} | {met} |")
    return "\n".join(lines) + "\n"


def speed_table(rows: list[dict]) -> list[str]:
    out = [
        "| case | configuration | ms | frames/s | TFLOP/s | % of dense peak | peak MB | warm-up s | max diff (vs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "median_ms" not in r:
            why = r.get("error") or r.get("skipped") or "not measured"
            out.append(f"| {r['case']} | {r.get('config', '-')} | - | - | - | - | - | - | {why} |")
            continue
        pct = "-" if r["pct_datasheet"] is None else f"{r['pct_datasheet']:.1f} %"
        peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:,.0f}"
        out.append(
            f"| {r['case']} | {r['config']} | {r['median_ms']:.1f} | {r['fps']:.2f} | {r['tflops']:.3g} | {pct} "
            f"| {peak} | {r['warmup_s']:.1f} | {r['max_diff']:.1e} ({r['reference']}) |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/gpu_check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--quick", action="store_true", help=f"under 3 minutes ({BUDGET['quick']:.0f} s of steps)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for the dry run")
    parser.add_argument(
        "--steps", default=",".join(STEP_NAMES), help="comma-separated subset of " + ",".join(STEP_NAMES)
    )
    parser.add_argument("--install", default="none carried", help="what gpu_check.sh did with .whl/")
    parser.add_argument("--command", default="", help="the command line to show in the report")
    parser.add_argument("--plan", action="store_true", help="print the steps and their limits, run nothing")
    args = parser.parse_args(argv)
    mode = mode_of(args.quick, args.device)
    if args.plan:
        for name, limit in plan(mode):
            print(f"{name:8} {limit:5.0f} s")
        print(f"budget   {BUDGET[mode]:5.0f} s")
        return 0
    only = set(args.steps.split(","))
    if not only <= set(STEP_NAMES):
        parser.error(f"unknown steps: {', '.join(sorted(only - set(STEP_NAMES)))}")
    args.outdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hat-gpu-check-"))
    command = args.command or "python -m bench.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    check = Check(args.outdir, work, args.quick, args.device, sys.executable, args.install, only, command)
    if "compile" in only and dict(plan(mode))["compile"]:
        from hat_plugin.runners import compile_unavailable  # before any step: Triton needs cc and Python.h

        check.compile_missing = compile_unavailable()
    steps = {s.name: s for s in STEPS}
    with_vs = False
    for name in STEP_NAMES:
        step = steps[name]
        if name not in only:
            continue
        if name == "env":
            step_env(check, step)
        elif name == "shim":
            with_vs = step_shim(check, step)
        elif name == "pytest":
            step_pytest(check, step, with_vs)
        elif name in ("speed", "runners"):
            step_bench(check, step, name)
        elif name == "vs_fps":
            if with_vs:
                step_vs_fps(check, step)
            else:
                check.set_aside(step, "not available", "the shim step did not pass (see its note)")
        elif name == "compile":
            if step.limit(check.mode) == 0:
                check.set_aside(step, "left out", f"not part of the {check.mode} check (CUDA only)")
            elif check.compile_missing:
                check.set_aside(step, "not available", f"torch.compile cannot build here: {check.compile_missing}")
            else:
                step_bench(check, step, "compile")
        if check.device != "cpu" and ("speed" in check.data or "runners" in check.data):
            speed_rows = check.data.get("speed", [])
            runner_rows = check.data.get("runners", [])
            check.data["targets"] = targets(speed_rows, runner_rows)  # type: ignore[arg-type]
        check.save()
    failed = [o.name for o in check.outcomes if o.status not in OK]
    print(f"== done in {time.time() - check.started:.0f} s; report: {args.outdir / 'report.md'}", flush=True)
    print((args.outdir / "report.md").read_text(encoding="utf-8"), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

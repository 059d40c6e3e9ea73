"""``python -m bench``: our engine vs spandrel, ONNX Runtime and OpenVINO on the same weights and input, to docs.

    python -m bench                         # HAT-S x4 64/128, HAT x4 64; CPU, 2 threads, 5 alternated rounds
    python -m bench --more                  # also HAT x4 128 and HAT-L x4 64
    python -m bench --impls ours openvino   # a subset of the implementations
    python -m bench --precision fp32 int8   # our rows (auto: what the engine picks on this machine)
    python -m bench --device cuda --precision fp16 --peer-precision bf16 --impls ours spandrel
    python -m bench --tiled                 # also 1024x1024 -> 4096x4096 with the engine's auto tile (minutes)
    python -m bench --scaling 256 512       # also time and memory vs size with a fixed tile (ours only)
    python -m bench --tile-sweep 64 128 256 # time, page faults per tile and memory vs tile size (ours only)
    python -m bench --no-write              # print only

Each implementation runs in its own subprocess (``bench.worker``) and reports its own peak RSS (``VmHWM``). All
rows of a case are driven alternately (a warm-up each, then rounds in forward and reverse order) and medians are
reported, because the shared machines this runs on are noisy: compare rows of one run by ratio. Weights are random
(seeded) with the official configs (speed does not depend on them); the input is a real photograph, and every
row's output is compared with our network run in float64 on the same input.
ONNX Runtime and OpenVINO run spandrel's network exported to ONNX once per shape (``bench.peer_onnx``); OpenVINO
runs fp32 and every reduced precision its CPU plugin reports for this CPU.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hat_plugin.arch import HAT
from hat_plugin.config import PRESETS
from hat_plugin.runtime import SPIN_COUNT, WAIT_POLICY, wait_setting
from hat_plugin.tiling import plan_tiles

from .machine import LoadMeter, Machine, describe, gpu_name

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
CACHE = REPO / "build" / "bench"
DEFAULT_CASES = ("HAT-S_SRx4:64", "HAT-S_SRx4:128", "HAT_SRx4:64")
MORE_CASES = ("HAT_SRx4:128", "HAT-L_SRx4:64")
ALL_IMPLS = ("ours", "spandrel", "onnxruntime", "openvino")
_MODULES = {"spandrel": "spandrel", "onnxruntime": "onnxruntime", "openvino": "openvino"}
_OV_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
_FLOP_PROBE = 32  # FLOPs are counted once per model on a 32x32 input; HAT's cost is linear in pixels


@dataclass
class Result:
    """Timings, memory and accuracy of one implementation at one precision on one case."""

    impl: str
    precision: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    minflt: list[int] = field(default_factory=list)
    peak_rss: int = 0
    cuda_max: int | None = None
    max_diff: float | None = None
    psnr_y: float | None = None
    loads: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.impl} {self.precision}"

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


class Worker:
    """A ``bench.worker`` subprocess answering one JSON line per command, under an address-space limit."""

    def __init__(self, impl: str, argv: list[str], mem_limit: int) -> None:
        cmd = [sys.executable, "-m", "bench.worker", "--impl", impl, *argv]

        def limit() -> None:
            if mem_limit:
                resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=limit
        )
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with code {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def random_weights(preset: str, folder: Path) -> Path:
    """A seeded random state_dict with the official keys and shapes (bias tables too, unlike the default init)."""
    torch.manual_seed(0)
    net = HAT(PRESETS[preset])
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0, 0.02)
    path = folder / f"{preset}.pth"
    torch.save(net.state_dict(), path)
    return path


def gflop_per_input_pixel(preset: str) -> float:
    """Forward FLOPs (2 per multiply-add) per input pixel, counted by ``FlopCounterMode`` on a small input."""
    net = HAT(PRESETS[preset]).eval()
    # The math backend, so attention's matrix products are counted (the fused CPU kernel is not registered).
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, _FLOP_PROBE, _FLOP_PROBE))
    return counter.get_total_flops() / 1e9 / _FLOP_PROBE**2


def openvino_precisions() -> list[str]:
    """fp32 plus the reduced precisions OpenVINO's CPU plugin reports for this CPU (probed, not assumed)."""
    import openvino as ov

    capabilities = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return ["fp32", *(p for p, cap in _OV_CAPABILITY.items() if cap in capabilities)]


def available_impls(wanted: list[str]) -> list[str]:
    """The wanted implementations whose package is installed (the peers are the ``bench`` extra)."""
    found = [i for i in wanted if i not in _MODULES or importlib.util.find_spec(_MODULES[i]) is not None]
    for missing in sorted(set(wanted) - set(found)):
        print(f"  {missing} is not installed: its rows are left out (pip install '.[bench]')", flush=True)
    return found


def export_peer_onnx(weights: Path, preset: str, size: int, threads: int) -> Path:
    """spandrel's network for this preset and input size as ONNX, exported once (in a subprocess) and kept in
    ``build/bench/`` under the weights' hash for later runs."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    out = CACHE / f"{preset}-{size}-{digest}.onnx"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = out.with_suffix(".part")
        cmd = [sys.executable, "-m", "bench.peer_onnx", "--weights", str(weights), "--size", str(size)]
        cmd += ["--out", str(part), "--threads", str(threads)]
        subprocess.run(cmd, check=True, cwd=REPO)
        part.replace(out)
    return out


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of the luma (BT.601 Y of [0, 1] RGB, as in the SR literature) between two ``(1, 3, H, W)`` images."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1) / 255.0
    ya, yb = (a.double() * weights).sum(1), (b.double() * weights).sum(1)
    mse = (ya - yb).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _case_argv(args: argparse.Namespace, preset: str, size: int) -> list[str]:
    argv = ["--preset", preset, "--size", str(size), "--device", args.device, "--threads", str(args.threads)]
    return [*argv, "--input", args.input]


def run_case(args: argparse.Namespace, preset: str, size: int, weights: Path, folder: Path) -> list[Result]:
    """Every row of one case, alternated: a warm-up each, then ``args.runs`` rounds in alternating order."""
    common = _case_argv(args, preset, size)
    rows: list[tuple[str, str, list[str]]] = []
    for impl in args.impls:
        if impl == "ours":
            rows += [("ours", p, ["--weights", str(weights)]) for p in args.precision]
        elif impl == "spandrel":
            rows.append(("spandrel", args.peer_precision, ["--weights", str(weights)]))
        else:
            onnx = ["--onnx", str(export_peer_onnx(weights, preset, size, args.threads))]
            precisions = openvino_precisions() if impl == "openvino" else ["fp32"]
            rows += [(impl, p, onnx) for p in precisions]
    reference = folder / "reference.pt"
    if args.device == "cpu":
        ref = Worker("reference", [*common, "--weights", str(weights)], args.mem_limit)
        try:
            ref.ask("run")
            ref.ask(f"save {reference}")
        finally:
            ref.close()
    workers, results = [], []
    try:
        for impl, precision, extra in rows:
            worker = Worker(impl, [*common, *extra, "--precision", precision], args.mem_limit)
            workers.append(worker)
            results.append(Result(impl, worker.ready.get("running", precision)))
        for worker in workers:
            worker.ask("run")
        order = list(range(len(workers)))
        meter = LoadMeter()
        for r in range(args.runs):
            for i in order if r % 2 == 0 else reversed(order):
                meter.start()
                reply = workers[i].ask("run")
                loads, others = meter.stop(reply["seconds"], reply["cpu_seconds"])
                res = results[i]
                res.seconds.append(reply["seconds"])
                res.cpu_seconds.append(reply["cpu_seconds"])
                res.minflt.append(reply["minflt"])
                res.loads += loads
                res.others += [] if others is None else [others]
                load, busy = load_cells(loads, [] if others is None else [others])
                print(
                    f"  {preset} {size} {res.label}: {reply['seconds']:.2f} s, load {load}, others {busy}", flush=True
                )
        for i, worker in enumerate(workers):
            worker.ask(f"save {folder / str(i)}.pt")
            stats = worker.ask("stats")
            results[i].peak_rss, results[i].cuda_max = stats["peak_rss"], stats["cuda_max"]
    finally:
        for worker in workers:
            worker.close()
    if reference.exists():
        truth = torch.load(reference)
        for i, res in enumerate(results):
            out = torch.load(folder / f"{i}.pt").double()
            res.max_diff = (out - truth).abs().max().item()
            res.psnr_y = psnr_y(out, truth)
        reference.unlink()
    return results


def timing_cells(seconds: list[float]) -> tuple[str, str]:
    """A row's median and its spread (fastest-slowest run), to three decimals: a ratio between two rows whose
    spreads overlap is within the noise of this machine."""
    return f"{statistics.median(seconds):.3f}", f"{min(seconds):.3f}-{max(seconds):.3f}"


def _load_cells(res: Result) -> tuple[str, str]:
    return load_cells(res.loads, res.others)


def load_cells(loads: list[float], others: list[float]) -> tuple[str, str]:
    """The load a row ran under: the range of the 1-minute load average sampled before and after each of its runs,
    and the mean number of CPUs other processes kept busy during them ("-" where not measured)."""
    load = "-" if not loads else f"{min(loads):.1f}-{max(loads):.1f}"
    busy = "-" if not others else f"{statistics.fmean(others):.2f}"
    return load, busy


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def _best_openvino(results: list[Result]) -> Result | None:
    openvino = [r for r in results if r.impl == "openvino"]
    return min(openvino, key=lambda r: r.median) if openvino else None


def comparison_table(rows: list[tuple[str, int, list[Result], float]], machine: Machine) -> str:
    lines = [
        "| model | input | impl | precision | median s | spread s | load | other CPUs busy | vs OpenVINO best "
        "| vs spandrel | CPU s | GFLOP/s | % of peak | peak RSS MB | CUDA max MB | minor faults / forward "
        "| max abs diff vs fp64 | PSNR-Y vs fp64 dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, size, results, gflop in rows:
        best = _best_openvino(results)
        peer = next((r for r in results if r.impl == "spandrel"), None)
        for res in results:
            rate = gflop / res.median
            vs_ov = f"{best.median / res.median:.2f}x" if best else "-"
            vs_sp = f"{peer.median / res.median:.2f}x" if peer else "-"
            diff = "-" if res.max_diff is None else f"{res.max_diff:.1e}"
            psnr = "-" if res.psnr_y is None else ("identical" if math.isinf(res.psnr_y) else f"{res.psnr_y:.1f}")
            median, spread = timing_cells(res.seconds)
            load, others = _load_cells(res)
            lines.append(
                f"| {preset} | {size}x{size} | {res.impl} | {res.precision} | {median} | {spread} | {load} | {others} "
                f"| {vs_ov} | {vs_sp} "
                f"| {statistics.median(res.cpu_seconds):.2f} | {rate:.0f} | {100 * rate / machine.peak_gflops:.0f} % "
                f"| {_mb(res.peak_rss)} "
                f"| {_mb(res.cuda_max)} | {statistics.median(res.minflt):,.0f} | {diff} | {psnr} |"
            )
    return "\n".join(lines)


def _versions(impls: list[str]) -> str:
    parts = [f"Python {sys.version.split()[0]}", f"torch {torch.__version__}"]
    for impl in impls:
        if impl in _MODULES:
            module = __import__(_MODULES[impl])
            parts.append(f"{impl} {getattr(module, '__version__', '?')}")
    return ", ".join(parts)


def openmp_wait() -> str:
    """Fix the OpenMP wait setting of every worker once, from what other processes use before the first one starts,
    as a front end would choose it on this machine now (``runtime.wait_setting``); an explicit one in the
    environment is kept. Chosen per worker, it would see the other rows' workers, which are ours. Returns it for
    the header."""
    why = "as set in the environment"
    if WAIT_POLICY not in os.environ and SPIN_COUNT not in os.environ:
        setting, why = wait_setting()
        os.environ.update(setting)
    chosen = ", ".join(f"`{k}={os.environ[k]}`" for k in (WAIT_POLICY, SPIN_COUNT) if k in os.environ)
    return f"{chosen} ({why})"


def start_competing(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that keep one core busy each (a Python loop), for rows under a known competing load;
    started before the OpenMP wait setting is chosen, so the choice sees them as a front end would."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    if procs:
        time.sleep(1.0)  # let them start spinning
    return procs


def header(args: argparse.Namespace, machine: Machine, command: str, load: tuple[float, float]) -> str:
    gpu = gpu_name(args.device)
    return "\n".join(
        [
            f"`{command}` — {datetime.date.today().isoformat()}",
            "",
            f"Machine: {machine.cpu}, {machine.cores} threads used (`torch.set_num_threads({args.threads})`, "
            f"OpenVINO `INFERENCE_NUM_THREADS`, ONNX Runtime `intra_op_num_threads`), "
            f"flags {' '.join(machine.flags) or 'none of interest'}"
            + (f"; GPU {gpu}" if gpu else "")
            + f". 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
            "(a shared machine: only ratios within this table mean anything). "
            f"OpenMP threads of the PyTorch rows: {args.threads_wait}. "
            f"Versions: {_versions(args.impls)}.",
            f"Device {args.device}; input: the centre of `tests/data/quality/chelsea.png` (a real photograph); "
            "seeded random weights with the official configs; 1 warm-up + "
            f"{args.runs} timed forwards per row, rows alternated (forward, then reverse order), each in its own "
            "process (peak RSS is that process's own `VmHWM`: its imports, the model and the runs); medians, and "
            "the spread (fastest-slowest timed forward). Load: the range of the 1-minute load average sampled "
            "before and after each of the row's forwards (it lags, and counts the bench's own work); other CPUs "
            "busy: the mean number of CPUs processes other than the timed one kept busy during its forwards "
            "(`/proc/stat` busy ticks minus the worker's CPU time and the driver's own). "
            "CPU s: CPU time of all the row's threads per forward (median), the work it takes whatever the "
            "neighbours do. Accuracy: each row's output (clamped to [0, 1]) against our network in float64 on the "
            "same input.",
            f"Peak estimate: {machine.peak_formula()}. FLOPs counted with `torch.utils.flop_counter` "
            f"(2 per multiply-add) on a {_FLOP_PROBE}x{_FLOP_PROBE} input and scaled by pixel count.",
        ]
    )


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the ``## heading`` section of a Markdown file, leaving the other sections alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{heading}\n\n{body.strip()}\n\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip() + "\n\n" + block
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + block + (text[end + 1 :] if end >= 0 else "")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text.rstrip() + "\n", encoding="utf-8")
    tmp.replace(path)


def single_runs(
    args: argparse.Namespace, preset: str, sizes: list[int], tiles: list[int], weights: Path, warm: bool = False
) -> list[str]:
    """Ours only, one timed forward per (size, tile) (a warm-up first when ``warm``); a Markdown table's rows."""
    gflop_px = gflop_per_input_pixel(preset)
    cfg = PRESETS[preset]
    rows = []
    for size in sizes:
        for tile in tiles:
            argv = [*_case_argv(args, preset, size), "--weights", str(weights), "--tile", str(tile)]
            argv += ["--precision", args.precision[0]]
            worker = Worker("ours", argv, args.mem_limit)
            try:
                if warm:
                    worker.ask("run")
                meter = LoadMeter()
                meter.start()
                reply = worker.ask("run")
                loads, others = meter.stop(reply["seconds"], reply["cpu_seconds"])
                stats = worker.ask("stats")
            finally:
                worker.close()
            used = reply["tile"] or tile or size
            count = len(plan_tiles(size, size, used, args.overlap, cfg.upscale, cfg.window_size).tiles)
            s, mp = reply["seconds"], (size * cfg.upscale) ** 2 / 1e6
            faults = reply["minflt"] / count
            name = str(tile) if tile else f"auto ({used})"
            print(
                f"  {preset} {size} tile {name}: {s:.1f} s, {faults:,.0f} faults/tile, "
                f"peak RSS {_mb(stats['peak_rss'])} MB",
                flush=True,
            )
            load, busy = load_cells(loads, [] if others is None else [others])
            rows.append(
                f"| {preset} | {size}x{size} | {name} | {count} | {s:.1f} | {load} | {busy} | {s / mp:.2f} "
                f"| {gflop_px * size * size / s:.0f} | {faults:,.0f} | {_mb(stats['peak_rss'])} "
                f"| {_mb(stats['cuda_max'])} |"
            )
    return rows


_SINGLE_HEAD = (
    "| model | input | tile | tiles | seconds | load | other CPUs busy | s / output MP | GFLOP/s "
    "| minor faults / tile | peak RSS MB | CUDA max MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="PRESET:SIZE items")
    parser.add_argument("--more", action="store_true", help=f"add {' '.join(MORE_CASES)}")
    parser.add_argument("--impls", nargs="+", default=list(ALL_IMPLS), choices=ALL_IMPLS)
    parser.add_argument("--runs", type=int, default=5, help="timed forwards per row (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", nargs="+", default=["fp32"], choices=("fp32", "fp16", "bf16", "int8", "auto"), help="our rows"
    )
    parser.add_argument("--peer-precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="spandrel's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input", choices=("photo", "rand"), default="photo")
    parser.add_argument("--overlap", type=int, default=16, help="tile overlap for the tiled runs")
    parser.add_argument("--tiled", action="store_true", help="also 1024x1024 -> 4096x4096, auto tile (slow on CPU)")
    parser.add_argument("--tiled-model", default="HAT-S_SRx4")
    parser.add_argument("--scaling", type=int, nargs="*", default=None, help="input sizes for the scaling table")
    parser.add_argument("--scaling-tile", type=int, default=0, help="tile for the scaling table (0: auto)")
    parser.add_argument("--tile-sweep", type=int, nargs="*", default=None, help="tile sizes to compare (ours)")
    parser.add_argument("--sweep-size", type=int, default=512, help="input size of the tile sweep")
    parser.add_argument("--skip-compare", action="store_true", help="only the --tiled / --scaling / sweep runs")
    parser.add_argument("--mem-limit-gb", type=float, default=16, help="address-space limit per worker (0: none)")
    parser.add_argument(
        "--competing", type=int, default=0, help="busy processes (one core each) to run beside the comparison"
    )
    parser.add_argument("--no-write", action="store_true", help=f"print only, do not update {DOC.name}")
    args = parser.parse_args(argv)
    args.mem_limit = int(args.mem_limit_gb * 2**30)
    args.impls = available_impls(args.impls)
    torch.set_num_threads(args.threads)
    machine = describe(args.threads)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    cases = [] if args.skip_compare else [*args.cases, *(MORE_CASES if args.more else ())]
    folder = Path(tempfile.mkdtemp(prefix="hat-bench-"))
    weights: dict[str, Path] = {}

    def weights_of(preset: str) -> Path:
        if preset not in weights:
            weights[preset] = random_weights(preset, folder)
        return weights[preset]

    competing = start_competing(args.competing)
    try:
        start_load = os.getloadavg()[0]
        args.threads_wait = openmp_wait()
        rows = []
        for case in cases:
            preset, _, size_text = case.partition(":")
            size = int(size_text)
            results = run_case(args, preset, size, weights_of(preset), folder)
            rows.append((preset, size, results, gflop_per_input_pixel(preset) * size * size))
    finally:
        for proc in competing:
            proc.kill()
            proc.wait()
    sections = {}
    if rows:
        table = comparison_table(rows, machine)
        head = header(args, machine, command, (start_load, os.getloadavg()[0]))
        if competing:
            head += f"\n{len(competing)} busy process(es) (a Python loop each) ran beside the rows throughout."
        print(head + "\n\n" + table)
        sections["## Engine vs spandrel, ONNX Runtime and OpenVINO"] = head + "\n\n" + table
    load_now = os.getloadavg()[0]
    single_head = (
        f"`{command}` (load average {load_now:.1f} at the start; OpenMP {args.threads_wait})\n\n{_SINGLE_HEAD}\n"
    )
    if args.tiled:
        lines = single_runs(args, args.tiled_model, [1024], [0], weights_of(args.tiled_model))
        sections["## Tiled 1024x1024 -> 4096x4096"] = single_head + "\n".join(lines)
        print(sections["## Tiled 1024x1024 -> 4096x4096"])
    if args.scaling:
        lines = single_runs(args, "HAT-S_SRx4", args.scaling, [args.scaling_tile], weights_of("HAT-S_SRx4"))
        sections["## Scaling with image size"] = single_head + "\n".join(lines)
        print(sections["## Scaling with image size"])
    if args.tile_sweep:
        lines = single_runs(args, "HAT-S_SRx4", [args.sweep_size], args.tile_sweep, weights_of("HAT-S_SRx4"), warm=True)
        sections["## Tile size: time and page faults"] = single_head + "\n".join(lines)
        print(sections["## Tile size: time and page faults"])
    if not args.no_write:
        for heading, body in sections.items():
            replace_section(DOC, heading, body)
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()

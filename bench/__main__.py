"""``python -m bench``: our engine vs spandrel's HAT on the same inputs and random weights, written to docs.

    python -m bench                         # HAT-S x4 64/128, HAT x4 64; fp32, CPU, 2 threads, 3 runs
    python -m bench --more                  # also HAT x4 128 and HAT-L x4 64
    python -m bench --device cuda --precision fp16 --peer-precision bf16
    python -m bench --tiled                 # also 1024x1024 -> 4096x4096 with the engine's auto tile (minutes)
    python -m bench --scaling 256 512       # also time and memory vs size with a fixed tile (ours only)
    python -m bench --no-write              # print only

Each implementation runs in its own subprocess (``bench.worker``), so peak RSS is its own; the two are driven
alternately (warm-up, then ours/peer, peer/ours, ... rounds) and medians are reported, because the shared machines
this runs on are noisy. Weights are random (seeded) with the official configs: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hat_plugin.arch import HAT
from hat_plugin.config import PRESETS

from .machine import Machine, describe, gpu_name

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
DEFAULT_CASES = ("HAT-S_SRx4:64", "HAT-S_SRx4:128", "HAT_SRx4:64")
MORE_CASES = ("HAT_SRx4:128", "HAT-L_SRx4:64")
_FLOP_PROBE = 32  # FLOPs are counted once per model on a 32x32 input; HAT's cost is linear in pixels


@dataclass
class Result:
    """Timings of one implementation on one case."""

    impl: str
    seconds: list[float] = field(default_factory=list)
    minflt: list[int] = field(default_factory=list)
    peak_rss: int = 0
    rss_loaded: int = 0
    cuda_max: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


class Worker:
    """A ``bench.worker`` subprocess answering one JSON line per command."""

    def __init__(self, impl: str, argv: list[str]) -> None:
        cmd = [sys.executable, "-m", "bench.worker", "--impl", impl, *argv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
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


def run_case(args: argparse.Namespace, preset: str, size: int, weights: Path, folder: Path) -> dict[str, Result]:
    """Both implementations, alternated: a warm-up each, then ``args.runs`` rounds in alternating order."""
    common = ["--weights", str(weights), "--preset", preset, "--size", str(size), "--device", args.device]
    common += ["--threads", str(args.threads)]
    impls = {"ours": args.precision, "spandrel": args.peer_precision}
    if args.no_peer:
        impls.pop("spandrel")
    workers = {name: Worker(name, [*common, "--precision", prec]) for name, prec in impls.items()}
    results = {name: Result(name, rss_loaded=w.ready["rss_loaded"]) for name, w in workers.items()}
    try:
        order = list(workers)
        for name in order:
            workers[name].ask("run")
        for r in range(args.runs):
            for name in order if r % 2 == 0 else reversed(order):
                reply = workers[name].ask("run")
                results[name].seconds.append(reply["seconds"])
                results[name].minflt.append(reply["minflt"])
                print(f"  {preset} {size} {name}: {reply['seconds']:.2f} s", flush=True)
        for name, worker in workers.items():
            worker.ask(f"save {folder / name}.pt")
            stats = worker.ask("stats")
            results[name].peak_rss, results[name].cuda_max = stats["peak_rss"], stats["cuda_max"]
    finally:
        for worker in workers.values():
            worker.close()
    return results


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def comparison_table(rows: list[tuple[str, int, dict[str, Result], float, float | None]], machine: Machine) -> str:
    lines = [
        "| model | input | impl | median s | s / output MP | GFLOP/s | % of peak | peak RSS MB | CUDA max MB "
        "| minor faults / forward | speed-up vs spandrel | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, size, results, gflop, diff in rows:
        out_mp = (size * PRESETS[preset].upscale) ** 2 / 1e6
        peer = results.get("spandrel")
        for name, res in results.items():
            rate = gflop / res.median
            ratio = f"{peer.median / res.median:.2f}x" if peer else "-"
            lines.append(
                f"| {preset} | {size}x{size} | {name} | {res.median:.2f} | {res.median / out_mp:.2f} | {rate:.0f} "
                f"| {100 * rate / machine.peak_gflops:.0f} % | {_mb(res.peak_rss)} | {_mb(res.cuda_max)} "
                f"| {statistics.median(res.minflt):,.0f} | {ratio} | {'-' if diff is None else f'{diff:.1e}'} |"
            )
    return "\n".join(lines)


def header(args: argparse.Namespace, machine: Machine, command: str) -> str:
    import spandrel  # only to report its version; the product never imports it

    gpu = gpu_name(args.device)
    return "\n".join(
        [
            f"`{command}` — {datetime.date.today().isoformat()}",
            "",
            f"Machine: {machine.cpu}, {machine.cores} threads used (`torch.set_num_threads({args.threads})`), "
            f"flags {' '.join(machine.flags) or 'none of interest'}"
            + (f"; GPU {gpu}" if gpu else "")
            + f". Versions: Python {sys.version.split()[0]}, torch {torch.__version__}, "
            f"spandrel {spandrel.__version__}.",
            f"Device {args.device}, ours {args.precision}, spandrel {args.peer_precision}; input `rand(1, 3, S, S)`, "
            f"seeded random weights with the official configs; 1 warm-up + {args.runs} timed forwards each, "
            "alternating the two implementations (each in its own process, so peak RSS is its own); medians.",
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


def single_runs(args: argparse.Namespace, preset: str, sizes: list[int], tile: int, weights: Path) -> list[str]:
    """Ours only, one forward per size (no warm-up: these are the long runs); a Markdown table's rows."""
    gflop_px = gflop_per_input_pixel(preset)
    rows = []
    for size in sizes:
        argv = ["--weights", str(weights), "--preset", preset, "--size", str(size), "--device", args.device]
        argv += ["--threads", str(args.threads), "--precision", args.precision, "--tile", str(tile)]
        worker = Worker("ours", argv)
        try:
            reply = worker.ask("run")
            stats = worker.ask("stats")
        finally:
            worker.close()
        s, mp = reply["seconds"], (size * PRESETS[preset].upscale) ** 2 / 1e6
        print(f"  {preset} {size} tile {tile or 'auto'}: {s:.1f} s, peak RSS {_mb(stats['peak_rss'])} MB", flush=True)
        rows.append(
            f"| {preset} | {size}x{size} | {tile or 'auto'} | {s:.1f} | {s / mp:.2f} "
            f"| {gflop_px * size * size / s:.0f} "
            f"| {_mb(stats['peak_rss'])} | {_mb(stats['cuda_max'])} |"
        )
    return rows


_SINGLE_HEAD = (
    "| model | input | tile | seconds | s / output MP | GFLOP/s | peak RSS MB | CUDA max MB |\n"
    "|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="PRESET:SIZE items")
    parser.add_argument("--more", action="store_true", help=f"add {' '.join(MORE_CASES)}")
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per implementation (default 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"), help="ours")
    parser.add_argument("--peer-precision", default=None, choices=("fp32", "fp16", "bf16"), help="spandrel's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true", help="ours only (spandrel not installed)")
    parser.add_argument("--tiled", action="store_true", help="also 1024x1024 -> 4096x4096, auto tile (slow on CPU)")
    parser.add_argument("--tiled-model", default="HAT-S_SRx4")
    parser.add_argument("--scaling", type=int, nargs="*", default=None, help="input sizes for the scaling table")
    parser.add_argument("--scaling-tile", type=int, default=128)
    parser.add_argument("--skip-compare", action="store_true", help="only the --tiled / --scaling runs")
    parser.add_argument("--no-write", action="store_true", help=f"print only, do not update {DOC.name}")
    args = parser.parse_args(argv)
    args.peer_precision = args.peer_precision or args.precision
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

    rows = []
    for case in cases:
        preset, _, size = case.partition(":")
        size = int(size)
        results = run_case(args, preset, size, weights_of(preset), folder)
        diff = None
        if "spandrel" in results:
            ours, peer = torch.load(folder / "ours.pt"), torch.load(folder / "spandrel.pt")
            diff = (ours - peer).abs().max().item()
        rows.append((preset, size, results, gflop_per_input_pixel(preset) * size * size, diff))
    sections = {}
    if rows:
        table = comparison_table(rows, machine)
        print(table)
        sections["## Engine vs spandrel"] = header(args, machine, command) + "\n\n" + table
    if args.tiled:
        lines = single_runs(args, args.tiled_model, [1024], 0, weights_of(args.tiled_model))
        sections["## Tiled 1024x1024 -> 4096x4096"] = f"`{command}`\n\n{_SINGLE_HEAD}\n" + "\n".join(lines)
        print(sections["## Tiled 1024x1024 -> 4096x4096"])
    if args.scaling:
        lines = single_runs(args, "HAT-S_SRx4", args.scaling, args.scaling_tile, weights_of("HAT-S_SRx4"))
        sections["## Scaling with image size"] = f"`{command}`\n\n{_SINGLE_HEAD}\n" + "\n".join(lines)
        print(sections["## Scaling with image size"])
    if not args.no_write:
        for heading, body in sections.items():
            replace_section(DOC, heading, body)
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()

"""The video command against the ``vspipe | encoder`` route on the same clip and model, and its peak memory
against the clip's length.

    python -m bench.bench_video                                   # bundled hat-tiny-x2, 128x72, 48 frames, CPU
    python -m bench.bench_video --model HAT-S_SRx4 --device cuda --width 480 --height 270 --frames 96
    python -m bench.bench_video --write docs/benchmarks.md        # also replace the "## Video" section there

Route "hat-upscale": ``python -m hat_plugin clip.mkv -o out.mkv --codec x264 ...`` (decode, colour, HAT, colour,
encode in one process, chunks and muxing included). Route "vspipe | encoder": a ``.vpy`` that decodes the clip
with PyAV (this machine has no VapourSynth source plugin), converts with ``resize.Bicubic`` to RGBS,
``core.hat.Upscale``, converts back to YUV 4:2:0, piped as y4m by ``vspipe`` into an encoder process that
writes the same x264 settings with PyAV (no audio re-muxing: the route cannot do that). Both are timed wall clock
from start to a finished file, in alternated rounds (this machine is shared and its load drifts); frames per
second are medians. Peak memory: the video command's peak RSS on the clip and on one four times as long.
"""

from __future__ import annotations

import argparse
import datetime
import fractions
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Video"
PIPE = "vspipe | encoder"
BIN = Path(sys.executable).parent

VPY = """
import av, numpy as np, vapoursynth as vs
core = vs.core
with av.open(r"{clip}") as container:
    frames = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
h, w = {height}, {width}
blank = core.std.BlankClip(format=vs.YUV420P8, width=w, height=h, length=len(frames), fpsnum=24, fpsden=1, keep=True)
def fill(n, f):
    out = f.copy()
    data = frames[n]
    np.copyto(np.asarray(out[0]), data[:h])
    np.copyto(np.asarray(out[1]), data[h:h + h // 4].reshape(h // 2, w // 2))
    np.copyto(np.asarray(out[2]), data[h + h // 4:].reshape(h // 2, w // 2))
    return out
clip = blank.std.ModifyFrame(clips=blank, selector=fill)
clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="709")
clip = core.hat.Upscale(clip, {model}, device="{device}", num_streams={streams})
clip = core.resize.Bicubic(clip, format=vs.YUV420P8, matrix_s="709")
clip.set_output()
"""


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A clip of moving gradients: x264 8-bit 4:2:0 BT.709, 24 fps, Matroska."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        stream.codec_context.options = {"crf": "12"}
        yy, xx = np.mgrid[0:height, 0:width]
        for n in range(frames):
            rgb = np.stack(
                [(xx * 3 + n * 5) % 256, (yy * 4 + n * 3) % 256, ((xx + yy) * 2 + n * 7) % 256], axis=-1
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def encode_y4m(output: str, preset: str, crf: str) -> None:
    """The encoder end of the vspipe route: y4m on stdin -> x264 (same settings as ours) in Matroska."""
    import av

    from hat_plugin.video.codecs import EncoderSettings, configure_encoder

    settings = EncoderSettings("x264", crf=float(crf), preset=preset).checked()
    with av.open(sys.stdin.buffer, format="yuv4mpegpipe") as source, av.open(output, "w") as target:
        incoming = source.streams.video[0]
        stream = target.add_stream("libx264", rate=incoming.average_rate or 24)
        stream.width, stream.height, stream.pix_fmt = incoming.width, incoming.height, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        configure_encoder(stream, settings)
        for number, frame in enumerate(source.decode(incoming)):
            frame.pts, frame.time_base = number, fractions.Fraction(1, 24)
            target.mux(stream.encode(frame))
        target.mux(stream.encode(None))


def environment(config_home: Path, plugin_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["XDG_CONFIG_HOME"] = str(config_home)
    if plugin_dir is not None:
        env["VAPOURSYNTH_EXTRA_PLUGIN_PATH"] = str(plugin_dir)
    return env


def ours(args: argparse.Namespace, clip: Path, out: Path, streams: int, env: dict[str, str]) -> list[str]:
    model = ["--model", args.model] if args.model else ["--weights", str(args.weights)]
    return [
        sys.executable, "-m", "hat_plugin", str(clip), "-o", str(out), *model, "--device", args.device,
        "--codec", "x264", "--preset", args.preset, "--crf", args.crf, "--streams", str(streams),
        "--overwrite", "--quiet",
    ]  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(args: argparse.Namespace, clip: Path, out: Path, streams: int, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (all processes of the route) of the video command."""
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(ours(args, clip, out, streams, env), env=env, check=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def run_vspipe(args: argparse.Namespace, script: Path, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (vspipe and the encoder) of the pipe route."""
    cpu, start = _children_cpu(), time.perf_counter()
    pipe = subprocess.Popen([str(BIN / "vspipe"), "-c", "y4m", str(script), "-"], stdout=subprocess.PIPE, env=env)
    encoder = [sys.executable, "-m", "bench.bench_video", "--encode-y4m", str(out), "--preset", args.preset,
               "--crf", args.crf]  # fmt: skip
    done = subprocess.run(encoder, stdin=pipe.stdout, env=env, cwd=REPO, check=False)
    assert pipe.stdout is not None
    pipe.stdout.close()
    if pipe.wait() != 0 or done.returncode != 0:
        raise RuntimeError("the vspipe route failed")
    return time.perf_counter() - start, _children_cpu() - cpu


def peak_rss(command: list[str], env: dict[str, str]) -> int:
    """Peak resident memory (bytes) of a command, measured by a fresh parent that runs only it."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *command], env=env, capture_output=True, text=True,
                            check=True)  # fmt: skip
    return int(result.stdout.split()[-1]) * 1024


def frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hat-tiny-x2")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=72)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", default="18")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--encode-y4m", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encode_y4m:
        encode_y4m(args.encode_y4m, args.preset, args.crf)
        return
    if args.weights:
        args.model = None
    work = Path(tempfile.mkdtemp(prefix="hat-bench-video-"))
    try:
        report(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, work: Path) -> None:
    from vs_filter import build

    plugin_dir = None
    import vapoursynth as vs

    if not hasattr(vs.core, "hat"):
        plugin_dir = work / "shim"
        plugin_dir.mkdir()
        build.build(plugin_dir)
    env = environment(work / "xdg", plugin_dir)
    subprocess.run([str(BIN / "vapoursynth"), "config"], env=env, check=True, capture_output=True)
    clip = work / "clip.mkv"
    make_clip(clip, args.width, args.height, args.frames)
    model = f'model="{args.model}"' if args.model else f'weights=r"{args.weights}"'
    routes: dict[str, list[tuple[float, float]]] = {}
    scripts = {}
    for streams in args.streams:
        script = work / f"route_{streams}.vpy"
        script.write_text(
            textwrap.dedent(VPY).format(
                clip=clip, width=args.width, height=args.height, model=model, device=args.device, streams=streams
            )
        )
        scripts[streams] = script
    load = os.getloadavg()[0]
    for round_number in range(args.rounds):
        order = list(args.streams) if round_number % 2 == 0 else list(reversed(args.streams))
        for streams in order:
            pair = [("hat-upscale", streams), (PIPE, streams)]
            for route, n in pair if round_number % 2 == 0 else reversed(pair):
                out = work / f"{route[:3]}_{n}.mkv"
                times = (
                    run_ours(args, clip, out, n, env)
                    if route == "hat-upscale"
                    else run_vspipe(args, scripts[n], out, env)
                )
                assert frames_in(out) == args.frames, f"{route} wrote a wrong number of frames"
                routes.setdefault(f"{route}|{n}", []).append(times)
                print(
                    f"round {round_number + 1}: {route}, {n} stream(s): {times[0]:.1f} s wall, {times[1]:.1f} s CPU",
                    file=sys.stderr,
                )
    long_clip = work / "long.mkv"
    make_clip(long_clip, args.width, args.height, args.frames * 4)
    memory = {
        length: peak_rss(ours(args, path, work / f"mem_{length}.mkv", 1, env), env)
        for length, path in ((args.frames, clip), (args.frames * 4, long_clip))
    }
    text = section(args, routes, memory, load)
    print(text)
    if args.write:
        write_section(args.write, text)


def section(
    args: argparse.Namespace, routes: dict[str, list[tuple[float, float]]], memory: dict[int, int], load: float
) -> str:
    import platform

    import av
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{cpu}, {os.cpu_count()} CPUs"
    command = "python -m bench.bench_video " + " ".join(sys.argv[1:])
    lines = [
        SECTION,
        "",
        f"`{command.strip()}` ({datetime.date.today().isoformat()})",
        "",
        f"Machine: {where}, load average {load:.1f} at the start (shared with other jobs); torch {torch.__version__}, "
        f"PyAV {av.__version__}. Model {args.model or args.weights.name} on {args.device}; clip {args.frames} "
        f"frames of {args.width}x{args.height} x264 4:2:0 BT.709 -> x{2 if 'x2' in str(args.model) else '?'}; "
        f"output x264 preset {args.preset} crf {args.crf}; {args.rounds} alternated rounds, medians; wall clock "
        "from start to finished file (process start-up, model load and muxing included).",
        "",
        "| route | streams | median wall s | frames/s | speed vs pipe | median CPU s | CPU vs pipe |",
        "|---|---|---|---|---|---|---|",
    ]
    for streams in args.streams:
        their_wall = statistics.median(t[0] for t in routes[f"{PIPE}|{streams}"])
        their_cpu = statistics.median(t[1] for t in routes[f"{PIPE}|{streams}"])
        for route in ("hat-upscale", PIPE):
            wall = statistics.median(t[0] for t in routes[f"{route}|{streams}"])
            cpu_s = statistics.median(t[1] for t in routes[f"{route}|{streams}"])
            name = route.replace("|", "\\|")
            lines.append(
                f"| {name} | {streams} | {wall:.2f} | {args.frames / wall:.2f} | {their_wall / wall:.2f}x | "
                f"{cpu_s:.1f} | {cpu_s / their_cpu:.2f}x |"
            )
    short, long = sorted(memory)
    lines += [
        "",
        f"Peak RSS of the video command: {memory[short] / 2**20:.0f} MB for {short} frames, "
        f"{memory[long] / 2**20:.0f} MB for {long} frames (x{long // short} the length): "
        f"{(memory[long] / memory[short] - 1) * 100:+.1f} %.",
        "",
        *NOTES,
    ]
    return "\n".join(lines)


NOTES = [
    "Notes: the pipe route's `.vpy` decodes the whole clip before the first frame (no source plugin here), so its",
    "decoding is not overlapped; ours decodes, upscales and encodes at the same time and also writes chunks and muxes.",
    "CPU seconds count every process of a route. On this shared 2-core machine PyTorch's spinning OpenMP threads make",
    "single runs swing by 2-5x; only ratios within one run of alternated rounds mean something. One finding from",
    "these runs is built in: PyTorch called from the main thread next to busy codec threads took 2-4x the CPU of the",
    "same frames on a worker thread, so the video pipeline runs inference on worker threads even for one stream.",
    "No GPU was available; on one, run `python -m bench.bench_video --device cuda --model HAT-S_SRx4 --width 480",
    "--height 270 --frames 96`.",
    "",
]


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the ``## Video`` section of ``path``."""
    current = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    updated = pattern.sub(text + "\n", current) if pattern.search(current) else current.rstrip() + "\n\n" + text
    path.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()

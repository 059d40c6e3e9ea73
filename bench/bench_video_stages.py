"""Where a video job's time goes on this machine: each stage of the pipeline timed on its own, for one clip.

    python -m bench.bench_video_stages                       # 640x480 H.264, bundled hat-tiny-x4, CPU
    python -m bench.bench_video_stages --frames 6 --long 3000

Stages, per frame: decode (PyAV, as the reader does), index (``build_index``: the one decoding pass plus a hash
of every picture), colour to RGB and back (``ColourConverter``), upscale (``Upscaler.upscale_tensor``), encode
(x264, the default codec, at the output size) and mux (``assemble``, measured on a whole job's segments). The
upscale's share is its time over the sum of all stages' times. ``--long`` also indexes a clip of that many
frames, to show what indexing by decoding costs on a long file next to upscaling the same frames.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import av
import torch

from bench.machine import describe
from hat_plugin.engine import Upscaler
from hat_plugin.video import VideoJob
from hat_plugin.video.colour import ColourConverter
from hat_plugin.video.frames import read_planes
from hat_plugin.video.index import build_index
from hat_plugin.video.probe import probe
from hat_plugin.video.segment import SegmentWriter


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    """An H.264 clip with B-frames (ffmpeg's moving test pattern) and AAC audio."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
         "-frames:v", str(frames), "-shortest", "-c:v", "libx264", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip


def per_frame(seconds: float, frames: int) -> float:
    return seconds / frames * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hat-tiny-x4")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--long", type=int, default=1500, help="frames of the clip indexed for the long-file figure")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(describe(threads))
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        make_clip(clip, args.frames, args.width, args.height)
        info = probe(clip)
        times: dict[str, float] = {}

        started = time.perf_counter()
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            planes = [read_planes(frame, info.layout) for frame in container.decode(stream)]
        times["decode"] = time.perf_counter() - started

        started = time.perf_counter()
        index = build_index(info)
        times["index"] = time.perf_counter() - started

        with Upscaler(args.model, device="cpu") as upscaler:
            scale = upscaler.scale
            to_rgb = ColourConverter(info.layout, info.colour, info.width, info.height, upscaler.device)
            job = VideoJob(clip, Path(folder) / "plan.mkv", args.model, upscaler=upscaler)
            fmt = job.prepare().fmt
            from_rgb = ColourConverter(fmt.layout, fmt.colour, fmt.width, fmt.height, upscaler.device)
            times["colour"] = times["upscale"] = 0.0
            outputs = []
            for frame in planes:
                started = time.perf_counter()
                rgb = to_rgb.to_rgb(frame)
                times["colour"] += time.perf_counter() - started
                started = time.perf_counter()
                big = upscaler.upscale_tensor(rgb)
                times["upscale"] += time.perf_counter() - started
                started = time.perf_counter()
                outputs.append(from_rgb.from_rgb(big))
                times["colour"] += time.perf_counter() - started

            started = time.perf_counter()
            writer = SegmentWriter(Path(folder) / "segment.mkv", fmt, job.prepare().chunks[0], "bench")
            for number, frame in enumerate(outputs):
                writer.add(frame, index.pts[number])
            writer.finish()
            times["encode"] = time.perf_counter() - started

            out = Path(folder) / "out.mkv"
            whole = VideoJob(clip, out, args.model, upscaler=upscaler, keep_work=True)
            whole.run()
            plan = whole.plan
            assert plan is not None
            from hat_plugin.video.mux import assemble

            started = time.perf_counter()
            assemble(out, plan.info, plan.index, plan.chunks, plan.work.segment, plan.streams, overwrite=True)
            times["mux"] = time.perf_counter() - started
            plan.work.remove()

        total = sum(times.values())
        print(f"\n{args.width}x{args.height} H.264, {args.frames} frames, {args.model} x{scale}, {threads} threads")
        print(f"{'stage':10} {'ms/frame':>10} {'share':>8}")
        for stage, seconds in times.items():
            print(f"{stage:10} {per_frame(seconds, args.frames):10.1f} {seconds / total:8.2%}")
        print(f"upscale share of all stages: {times['upscale'] / total:.2%}; "
              f"{args.frames / total:.3f} fps end to end")  # fmt: skip

        if args.long:
            long_clip = Path(folder) / "long.mp4"
            make_clip(long_clip, args.long, args.width, args.height)
            started = time.perf_counter()
            long_index = build_index(probe(long_clip))
            seconds = time.perf_counter() - started
            upscale = times["upscale"] / args.frames * len(long_index)
            print(
                f"indexing {len(long_index)} frames: {seconds:.1f} s ({per_frame(seconds, len(long_index)):.2f} "
                f"ms/frame), {seconds / upscale:.3%} of upscaling them ({upscale / 3600:.1f} h at the rate above)"
            )


if __name__ == "__main__":
    main()

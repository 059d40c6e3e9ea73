"""One implementation in its own process, driven line by line by ``python -m bench`` (so its memory is its own).

    python -m bench.worker --impl ours --weights W.pth --preset HAT-S_SRx4 --size 64 [--precision fp32]
    python -m bench.worker --impl openvino --onnx M.onnx --preset HAT-S_SRx4 --size 64 --precision bf16

Implementations: ``ours`` (the engine), ``spandrel`` (its HAT, eager PyTorch), ``onnxruntime`` and ``openvino``
(an ONNX file of spandrel's network, exported once by ``bench.peer_onnx``), and ``reference`` (our network in
float64, the accuracy yardstick; never timed against the others).

Protocol on stdin/stdout, one JSON object per line: it prints ``{"ready": ...}`` once loaded, then answers
``run`` (one forward; wall and CPU seconds of all its threads, minor page faults), ``save PATH`` (the last
output as a tensor file), ``stats`` (this process's own peak RSS from ``VmHWM``, CUDA max allocated), ``quit``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hat_plugin.runtime import configure_process

configure_process()  # before torch is imported: the OpenMP wait policy is read when its library loads

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hat_plugin.config import PRESETS  # noqa: E402

_DTYPES = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp64": torch.float64,
    "int8": torch.qint8,  # ours only: Linear layers in int8 (hat_plugin.quantize)
}
_OV_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "quality" / "chelsea.png"

Forward = Callable[[torch.Tensor], torch.Tensor]


def own_peak_rss() -> int:
    """This process's own peak resident set size in bytes (``VmHWM``).

    Not ``ru_maxrss``: on Linux a child inherits its parent's high-water mark across ``fork``, so a worker started
    by a 2 GiB parent would report 2 GiB however little it used. ``ru_maxrss`` is the fallback off Linux.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def photo_input(size: int) -> torch.Tensor:
    """A real photograph as ``(1, 3, size, size)`` in [0, 1]: the centre of a held-out test crop (resized with
    Lanczos when ``size`` is larger than the crop)."""
    from PIL import Image

    with Image.open(PHOTO) as photo:
        im = photo.convert("RGB")
        if size > min(im.size):
            im = im.resize((size, size), Image.Resampling.LANCZOS)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()


def _ours(args: argparse.Namespace) -> Forward:
    from hat_plugin import Upscaler
    from hat_plugin.arch import HAT

    net = HAT(PRESETS[args.preset])
    net.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True), strict=True)
    up = Upscaler(net, device=args.device, precision=args.precision, tile=args.tile, overlap=args.overlap)
    args.running = next(name for name, dtype in _DTYPES.items() if dtype == up.dtype)

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = up.upscale_tensor(x)
        args.tile_used = up._plan((x.shape[-2], x.shape[-1]))[0]  # the engine's choice (auto tile), for the report
        return out

    return forward


def _reference(args: argparse.Namespace) -> Forward:
    from hat_plugin.arch import HAT

    net = HAT(PRESETS[args.preset])
    net.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True), strict=True)
    net = net.double().eval()
    return lambda x: net(x.double()).clamp(0, 1)


def _spandrel(args: argparse.Namespace) -> Forward:
    import spandrel

    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    desc = spandrel.ModelLoader(device=args.device).load_from_state_dict(state)
    dtype = _DTYPES[args.precision]
    net = desc.model.eval().to(args.device, dtype)
    return lambda x: net(x.to(dtype)).float().clamp(0, 1)


def _onnxruntime(args: argparse.Namespace) -> Forward:
    import onnxruntime as ort

    if args.precision != "fp32":
        raise SystemExit("onnxruntime rows are fp32 only (its CPU provider has no bf16/fp16 kernels for this graph)")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]).clamp(0, 1)


def _openvino(args: argparse.Namespace) -> Forward:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": args.threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": _OV_HINTS[args.precision],
    }
    compiled = core.compile_model(core.read_model(args.onnx), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: torch.from_numpy(request.infer({0: x.numpy()})[0].copy()).clamp(0, 1)


_IMPLS: dict[str, Callable[[argparse.Namespace], Forward]] = {
    "ours": _ours,
    "reference": _reference,
    "spandrel": _spandrel,
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=tuple(_IMPLS), required=True)
    parser.add_argument("--weights", help="state_dict (.pth) for ours, reference and spandrel")
    parser.add_argument("--onnx", help="ONNX file for onnxruntime and openvino")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--input", choices=("photo", "rand"), default="photo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=(*_DTYPES, "auto"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    forward = _IMPLS[args.impl](args)
    device = torch.device(args.device)
    if args.input == "photo":
        x = photo_input(args.size)
    else:
        x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))
    x = x.to(device)
    cuda = device.type == "cuda"
    out = None
    ready = {"ready": True, "rss_loaded": own_peak_rss(), "running": getattr(args, "running", args.precision)}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            out = None
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if cuda:
                torch.cuda.synchronize(device)
            start, cpu = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                out = forward(x)
            if cuda:
                torch.cuda.synchronize(device)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            reply = {"seconds": seconds, "cpu_seconds": cpu, "minflt": faults, "shape": list(out.shape)}
            reply["tile"] = getattr(args, "tile_used", None)
        elif cmd == "save":
            torch.save(out.cpu(), arg)
            reply = {"saved": arg}
        elif cmd == "stats":
            cuda_max = torch.cuda.max_memory_allocated(device) if cuda else None
            reply = {"peak_rss": own_peak_rss(), "cuda_max": cuda_max}
        elif cmd == "quit":
            break
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()

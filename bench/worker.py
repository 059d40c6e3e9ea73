"""One implementation in its own process, driven line by line by ``python -m bench`` (so peak RSS is its own).

    python -m bench.worker --impl ours|spandrel --weights W.pth --preset HAT-S_SRx4 --size 64 [--device cpu]

Protocol on stdin/stdout, one JSON object per line: it prints ``{"ready": ...}`` once loaded, then answers
``run`` (one forward; seconds and minor page faults), ``save PATH`` (the last output as a tensor file),
``stats`` (peak RSS, CUDA max allocated) and ``quit``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch

from hat_plugin.config import PRESETS

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _ours(args: argparse.Namespace, state: dict) -> object:
    from hat_plugin import Upscaler
    from hat_plugin.arch import HAT
    from hat_plugin.runtime import configure_process

    configure_process()

    net = HAT(PRESETS[args.preset])
    net.load_state_dict(state, strict=True)
    up = Upscaler(net, device=args.device, precision=args.precision, tile=args.tile, overlap=args.overlap)
    return up.upscale_tensor


def _spandrel(args: argparse.Namespace, state: dict) -> object:
    import spandrel

    desc = spandrel.ModelLoader(device=args.device).load_from_state_dict(state)
    net = desc.model.eval().to(args.device, _DTYPES[args.precision])
    dtype = _DTYPES[args.precision]
    return lambda x: net(x.to(dtype)).float()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=("ours", "spandrel"), required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=tuple(_DTYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    forward = (_ours if args.impl == "ours" else _spandrel)(args, state)
    del state
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.rand(1, 3, args.size, args.size, generator=generator).to(device)
    cuda = device.type == "cuda"
    out = None
    print(json.dumps({"ready": True, "rss_loaded": _peak_rss()}), flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            out = None
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.inference_mode():
                out = forward(x)
            if cuda:
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            reply = {"seconds": seconds, "minflt": faults, "shape": list(out.shape)}
        elif cmd == "save":
            torch.save(out.cpu(), arg)
            reply = {"saved": arg}
        elif cmd == "stats":
            reply = {"peak_rss": _peak_rss(), "cuda_max": torch.cuda.max_memory_allocated(device) if cuda else None}
        elif cmd == "quit":
            break
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()

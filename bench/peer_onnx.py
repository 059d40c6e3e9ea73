"""Export spandrel's HAT to ONNX once, the way a user who wants OpenVINO or ONNX Runtime would do it today.

    python -m bench.peer_onnx --weights W.pth --size 64 --out M.onnx

Static input shape ``(1, 3, size, size)``, opset 18, PyTorch's TorchScript-based exporter (spandrel's network
traces cleanly with it; the masks for that size become constants). Run in its own process by ``python -m bench``
so the exporter's memory never counts against anything measured.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def export(weights: str, size: int, out: str, opset: int = 18) -> float:
    """Write the ONNX file; returns the seconds the export took."""
    import spandrel

    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = spandrel.ModelLoader().load_from_state_dict(state).model.eval()
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes about shapes turned into constants: intended here
        torch.onnx.export(
            net,
            (torch.rand(1, 3, size, size),),
            out,
            opset_version=opset,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"exported in {export(args.weights, args.size, args.out, args.opset):.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""Our HAT network as an ONNX file with a static tile shape, for runtimes outside PyTorch (OpenVINO, ONNX Runtime,
TensorRT, vs-mlrt).

The graph takes ``(batch, in_chans, tile, tile)`` float32 in [0, 1] and returns ``(batch, in_chans, tile*scale,
tile*scale)`` (not clamped), exactly what ``HAT.forward`` computes: padding to the window size, the attention masks
and the key/value window gathers for that shape are constants in the graph. It is made with PyTorch's
``torch.export``-based exporter (the ``onnx`` and ``onnxscript`` packages: the ``export`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .arch import HAT
from .errors import ExportError, OptionError, OutputError
from .files import atomic_path, refuse_inputs

__all__ = ["MIN_OPSET", "Check", "check_onnx", "export_onnx"]

MIN_OPSET = 17
DEFAULT_OPSET = 18
_NEEDED = ("onnx", "onnxscript")


@dataclass(frozen=True)
class Check:
    """How an exported file's output compares with the network's own on one random input."""

    max_abs_diff: float
    runtime: str


def export_onnx(
    model: HAT,
    path: str | os.PathLike[str],
    tile: int,
    *,
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``model`` (float32, CPU) as ONNX for ``batch`` inputs of ``tile`` x ``tile`` pixels; atomically,
    never over one of ``inputs`` (the weights file it came from), whatever path reaches it.

    Raises ``OptionError`` for a bad shape or opset, ``ExportError`` when the exporter is missing or fails,
    ``OutputError`` when the file cannot be written (or exists and ``overwrite`` is false).
    """
    if tile < 1 or batch < 1:
        raise OptionError(f"tile and batch must be 1 or more, not {tile} and {batch}")
    if opset < MIN_OPSET:
        raise OptionError(f"opset {opset} is too old: use {MIN_OPSET} or newer")
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"exporting needs {' and '.join(missing)}: pip install 'hat-plugin[export]'")
    path = Path(path)
    inputs = tuple(inputs)
    refuse_inputs(path, inputs)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; use {{overwrite}} to replace it", option="overwrite")
    net = model.to("cpu", torch.float32).eval()
    example = torch.rand(batch, net.config.in_chans, tile, tile, generator=torch.Generator().manual_seed(0))
    try:
        with atomic_path(path, overwrite=overwrite, inputs=inputs) as temp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own internals are not the user's concern
            torch.onnx.export(
                net,
                (example,),
                str(temp),
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                external_data=False,
            )
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        raise ExportError(f"the ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return path


def check_onnx(model: HAT, path: str | os.PathLike[str]) -> Check:
    """Run the exported file with ONNX Runtime on a random input of its shape and compare with ``model``."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ExportError("checking an export needs onnxruntime: pip install onnxruntime")
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [int(n) for n in feed.shape]
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    got = torch.from_numpy(session.run(None, {feed.name: x.numpy()})[0])
    with torch.inference_mode():
        want = model.to("cpu", torch.float32).eval()(x)
    if got.shape != want.shape:
        raise ExportError(f"the exported graph returns {tuple(got.shape)}, the network {tuple(want.shape)}")
    return Check(float((got - want).abs().max()), f"onnxruntime {ort.__version__}")

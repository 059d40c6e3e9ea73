"""int8 on the CPU: HAT's Linear layers (attention projections and MLPs, most of its matrix work) run as int8
matrix products with per-output-channel weight scales and activation scales measured on each input (dynamic
quantisation, ``torch.ao.quantization.quantize_dynamic``); convolutions, attention and normalisation stay fp32.

The kernels are PyTorch's quantized CPU engines (``x86``/``fbgemm``: AVX2 or AVX-512 VNNI; ``onednn``); a PyTorch
build without one cannot run int8, which is refused with a ``DeviceError`` rather than emulated. PyTorch marks
``torch.ao.quantization`` and its quantized-tensor constructors deprecated in favour of torchao; they still work
(PyTorch 2.14 here), need no other package, and their warnings are silenced here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .errors import DeviceError

__all__ = ["INT8_ENGINES", "int8_engine", "quantize_int8"]

INT8_ENGINES = ("x86", "fbgemm", "onednn")
"""PyTorch's quantized CPU engines with per-channel dynamic int8 Linear kernels, preferred first."""


def int8_engine(wanted: str | None = None) -> str:
    """The quantized engine int8 runs on: ``wanted`` if given, else the first of ``INT8_ENGINES`` this PyTorch
    build has; ``DeviceError`` in one line when it has none (or not the one wanted)."""
    supported = list(torch.backends.quantized.supported_engines)
    candidates = [wanted] if wanted else list(INT8_ENGINES)
    for name in candidates:
        if name in supported and name in INT8_ENGINES:
            return name
    have = ", ".join(e for e in supported if e != "none") or "none"
    raise DeviceError(
        f"int8 needs PyTorch's quantized CPU kernels ({wanted or ' or '.join(INT8_ENGINES)}), which this PyTorch "
        f"build does not have (it has: {have}); use fp32"
    )


def quantize_int8(model: nn.Module, engine: str | None = None) -> nn.Module:
    """An int8 copy of ``model`` (fp32, on the CPU): every ``nn.Linear`` quantized per output channel, activations
    quantized dynamically; ``model`` itself is left as it was."""
    chosen = int8_engine(engine)
    torch.backends.quantized.engine = chosen
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        quantized: nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=False
        )
    return quantized.eval()

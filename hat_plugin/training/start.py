"""The network a training run starts from: a preset with fresh weights, or trained weights (their EMA) to fine-tune.

Fresh weights use the official HAT initialisation, or (``init="bicubic"``) start as a bicubic upscaler, which saves
most of a short CPU budget. Trained weights of another scale (x4 or x3 from x2) keep every tensor that fits; the new
upsample stages start as per-channel bicubic, so the network starts as "the old model, then bicubic".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..arch import HAT
from ..checkpoint import build_model, read_state_dict, stated_rgb_mean
from ..config import HATConfig, detect_config
from ..errors import CheckpointError, ModelNotFoundError, OptionError
from ..imresize import cubic
from .recipe import TRAIN_PRESETS, Kind, preset_config

__all__ = ["INITS", "Start", "bicubic_stage", "init_as_bicubic", "init_official", "starting_model"]

INITS = ("hat", "bicubic")


@dataclass
class Start:
    """The network to train and where it came from."""

    model: HAT
    kind: Kind
    """``SCRATCH`` for a preset, ``FINETUNE`` for weights of the same scale, ``NEW_SCALE`` otherwise."""
    source: str
    """The preset name or the weights file."""
    fresh: list[str]
    """State-dict keys that did not come from the source weights (empty for a same-scale fine-tune)."""


def init_official(model: nn.Module) -> None:
    """The official HAT initialisation: truncated normal (std 0.02) for linear layers and position-bias tables,
    zero biases, unit LayerNorms; convolutions keep PyTorch's default."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for name, param in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                nn.init.trunc_normal_(param, std=0.02)


def _subpixel_kernels(scale: int) -> torch.Tensor:
    """``(scale**2, 3, 3)`` kernels that turn one LR pixel's 3x3 neighbourhood into its ``scale x scale`` HR pixels
    (PixelShuffle order): MATLAB's bicubic taps at the HR pixel centres' distances from the three LR pixels,
    renormalised after dropping the taps beyond them (x2: 0.25 / 0.75 / 1.25 px, the 1.75 px tap dropped)."""
    offsets = (np.arange(scale) + 0.5) / scale - 0.5
    taps = cubic(np.abs(np.array([-1.0, 0.0, 1.0])[None, :] - offsets[:, None]))
    weights = torch.from_numpy(taps / taps.sum(axis=1, keepdims=True)).float()
    return torch.stack([torch.outer(weights[i], weights[j]) for i in range(scale) for j in range(scale)])


@torch.no_grad()
def bicubic_stage(conv: nn.Conv2d, channels: range) -> None:
    """Make the rows of a PixelShuffle conv (x2 or x3: ``scale**2`` outputs per input channel) that produce
    ``channels`` a per-channel bicubic upscale."""
    scale = math.isqrt(conv.out_channels // conv.in_channels)
    kernels = _subpixel_kernels(scale)
    n = scale * scale
    for c in channels:
        conv.weight[c * n : c * n + n].zero_()
        conv.weight[c * n : c * n + n, c] = kernels
        if conv.bias is not None:
            conv.bias[c * n : c * n + n].zero_()


@torch.no_grad()
def init_as_bicubic(model: HAT) -> None:
    """Start from (almost) bicubic upscaling so training only has to learn the correction.

    Input channels ride through ``conv_first`` channels 0-2 and, as +x and -x around the LeakyReLU, through
    ``conv_before_upsample`` channels 0-5; each upsample stage interpolates those bicubically and ``conv_last``
    recombines them. The body's residual output starts at zero (``conv_after_body``); all other weights keep the
    HAT initialisation, and the layout is the unchanged HAT state_dict.
    """
    n = model.config.in_chans
    first, before = model.conv_first, model.conv_before_upsample[0]
    relu = model.conv_before_upsample[1]
    assert isinstance(relu, nn.LeakyReLU)
    slope = relu.negative_slope
    assert isinstance(before, nn.Conv2d) and before.bias is not None and first.bias is not None
    first.weight[:n].zero_()
    first.bias[:n].zero_()
    before.weight[: 2 * n].zero_()
    before.bias[: 2 * n].zero_()
    for c in range(n):
        first.weight[c, c, 1, 1] = 1.0
        before.weight[c, c, 1, 1] = 1.0
        before.weight[n + c, c, 1, 1] = -1.0
    if isinstance(model.conv_after_body, nn.Conv2d) and model.conv_after_body.bias is not None:
        model.conv_after_body.weight.zero_()
        model.conv_after_body.bias.zero_()
    for stage in model.upsample:
        if isinstance(stage, nn.Conv2d):
            bicubic_stage(stage, range(2 * n))
    last = model.conv_last
    assert last.bias is not None
    last.weight.zero_()
    last.bias.zero_()
    for c in range(n):
        last.weight[c, c, 1, 1] = 1.0 / (1.0 + slope)
        last.weight[c, n + c, 1, 1] = -1.0 / (1.0 + slope)


def _from_scratch(name: str, config: HATConfig, init: str) -> Start:
    model = build_model(config)
    init_official(model)
    if init == "bicubic":
        init_as_bicubic(model)
    return Start(model, Kind.SCRATCH, name, sorted(model.state_dict()))


def _from_weights(path: Path, scale: int) -> Start:
    source = read_state_dict(path)  # params_ema when the file has it, else params
    try:
        found = detect_config(source)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    mean = stated_rgb_mean(path)  # a model trained with another mean keeps it (neosr: 0.5)
    config = HATConfig(**{**found.to_dict(), "upscale": scale, "rgb_mean": mean})
    model = build_model(config)
    init_official(model)
    own = model.state_dict()
    fitting = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in fitting]
    if found.upscale == scale:
        if missing:
            raise CheckpointError(f"{path}: not a complete HAT checkpoint (missing {', '.join(missing[:3])})")
        model.load_state_dict(fitting, strict=True)
        return Start(model, Kind.FINETUNE, str(path), [])
    model.load_state_dict(fitting, strict=False)
    for index, stage in enumerate(model.upsample):
        if isinstance(stage, nn.Conv2d) and f"upsample.{index}.weight" in missing:
            bicubic_stage(stage, range(config.num_feat))
    return Start(model, Kind.NEW_SCALE, str(path), sorted(missing))


def starting_model(spec: str | os.PathLike[str], scale: int, *, init: str = "hat") -> Start:
    """The network named by ``--from``: a preset (``HAT-S``, ``HAT``, ``HAT-L``, ``tiny``) with fresh weights,
    or a weights file / manifest model name whose ``params_ema`` (else ``params``) are the start.

    Fresh weights come from the global torch generator: seed it first for a reproducible start.
    """
    if init not in INITS:
        raise OptionError(f"unknown {{init}} {init!r}: use one of {', '.join(INITS)}", option="init")
    config = preset_config(str(spec), scale)
    if config is not None:
        return _from_scratch(str(spec), config, init)
    from .. import weights  # the download stack only when a name has to be resolved

    try:
        path = weights.resolve(spec)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc} (presets to train from scratch: {', '.join(TRAIN_PRESETS)})") from None
    return _from_weights(path, scale)

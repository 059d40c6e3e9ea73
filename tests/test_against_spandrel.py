"""Our HAT against an independent implementation (spandrel's port of the official ``hat_arch.py``) on
configurations beyond the golden ones: other window sizes, overlap ratios, depths, heads, scales, the
``identity`` residual connection and odd image sizes. spandrel is a test-only dependency; the product never
imports it."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from hat_plugin import HATConfig, detect_config, load_model
from hat_plugin.checkpoint import build_model

spandrel_hat = importlib.import_module("spandrel.architectures.HAT.__arch.HAT")  # from the test extra

CONFIGS = [
    HATConfig(embed_dim=24, depths=(2,), num_heads=(3,), window_size=4, compress_ratio=3, squeeze_factor=4, upscale=2),
    HATConfig(embed_dim=16, depths=(3, 1), num_heads=(2, 4), window_size=8, overlap_ratio=0.25, compress_ratio=2,
              squeeze_factor=8, mlp_ratio=1.5, upscale=3, resi_connection="identity"),
    HATConfig(embed_dim=12, depths=(2, 2, 2), num_heads=(1, 2, 3), window_size=6, overlap_ratio=1.0,
              compress_ratio=4, squeeze_factor=3, upscale=4),
    HATConfig(embed_dim=8, depths=(1,), num_heads=(2,), window_size=4, compress_ratio=1, squeeze_factor=2, upscale=8),
]  # fmt: skip


def _theirs(cfg: HATConfig) -> torch.nn.Module:
    ours_only = ("conv_scale", "rgb_mean")  # not constructor arguments of theirs (the mean is the official one)
    kwargs = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ours_only}
    kwargs.update(depths=list(cfg.depths), num_heads=list(cfg.num_heads), upsampler="pixelshuffle")
    return spandrel_hat.HAT(**kwargs).eval()


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"w{c.window_size}x{c.upscale}-{len(c.depths)}rhag")
def test_same_output_as_independent_implementation(cfg: HATConfig) -> None:
    torch.manual_seed(0)
    theirs = _theirs(cfg)
    with torch.no_grad():  # random weights large enough that every part of the network shows in the output
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    sd = theirs.state_dict()  # float32, as published checkpoints are
    theirs.double()
    assert detect_config(sd) == cfg
    ours = load_model(sd, dtype=torch.float64)
    assert set(ours.state_dict()) == set(build_model(cfg, device="meta").state_dict()) == set(sd)
    x = torch.rand(2, 3, 2 * cfg.window_size + 3, 3 * cfg.window_size - 1, dtype=torch.float64)
    with torch.inference_mode():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-8

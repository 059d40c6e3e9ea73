"""The model as every process of a video job builds it, so a Ray worker computes the same bits as this machine.

CPU kernels can round differently when weights sit at differently aligned addresses (weights read from a
``.safetensors`` file keep the file's offsets, which are not 64-byte aligned). A job therefore never runs the
tensors it read: both the local engine and each Ray worker build a fresh network and copy the weights into it, so
all of them use freshly allocated, aligned parameters, and the same settings give the same output everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..arch import HAT
from ..checkpoint import build_model, load_model
from ..config import HATConfig

__all__ = ["load_job_model", "rebuild_model"]


def rebuild_model(config: HATConfig, state: Mapping[str, torch.Tensor]) -> HAT:
    """A new network for ``config`` holding copies of ``state`` (float32, on the CPU, eval mode, no gradients)."""
    net = build_model(config)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


def load_job_model(weights: Path) -> HAT:
    """The network of a weights file, rebuilt as ``rebuild_model`` does (what a Ray worker gets)."""
    loaded = load_model(weights)
    return rebuild_model(loaded.config, loaded.state_dict())

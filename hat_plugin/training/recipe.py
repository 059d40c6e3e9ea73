"""The official HAT training recipe as data: every default of ``hat-upscale train`` with the file it comes from.

Sources are the option files of the official repository, XPixelGroup/HAT ``options/train/``:

- ``train_HAT_SRx2_from_scratch.yml``, ``train_HAT-S_SRx2_from_scratch.yml`` (DF2K from scratch, 500k iterations)
- ``train_HAT_SRx2_ImageNet_from_scratch.yml``, ``train_HAT-L_SRx2_ImageNet_from_scratch.yml`` (ImageNet
  pre-training, 800k iterations)
- ``train_HAT_SRx2_finetune_from_ImageNet_pretrain.yml``, ``train_HAT-L_SRx4_finetune_from_ImageNet_pretrain.yml``
  (fine-tuning on DF2K from the pre-trained ``params_ema``, 250k iterations)
- ``train_HAT_SRx4_finetune_from_SRx2.yml``, ``train_HAT-S_SRx4_finetune_from_SRx2.yml`` (x4 from the x2 model)

Learning-rate milestones are stored as fractions of the stage's steps, so a shorter run keeps the same shape.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config import PRESETS, HATConfig

__all__ = [
    "ADAM_BETAS",
    "BATCH",
    "EMA_DECAY",
    "GAMMA",
    "LR_PATCH",
    "SEED",
    "TRAIN_PRESETS",
    "Kind",
    "StageRecipe",
    "lr_at",
    "preset_config",
    "recipe_for",
]

ADAM_BETAS = (0.9, 0.99)
"""``optim_g: {type: Adam, betas: [0.9, 0.99], weight_decay: 0}`` in every file."""
EMA_DECAY = 0.999
"""``train: ema_decay: 0.999`` in every file; the result is the EMA (``params_ema``)."""
GAMMA = 0.5
"""``scheduler: {type: MultiStepLR, gamma: 0.5}``: the learning rate halves at each milestone."""
LR_PATCH = 64
"""LR patch side: ``gt_size`` 128 at x2, 192 at x3, 256 at x4, i.e. 64 LR pixels (four 16-pixel windows)."""
BATCH = 4
"""``batch_size_per_gpu: 4`` (the paper trains on 8 GPUs, 32 patches per step in all)."""
SEED = 0
"""``manual_seed: 0``."""
VAL_EVERY = 5000
"""``val: val_freq: 5e3`` (DF2K runs); checkpoints at the same interval (``save_checkpoint_freq: 5e3``)."""


class Kind(enum.Enum):
    """What a training stage starts from, which decides its learning rate, length and milestones."""

    SCRATCH = "scratch"
    """Random weights on the target data (``*_from_scratch.yml``)."""
    PRETRAIN = "pretrain"
    """Random weights on a large same-task set, the paper's ImageNet stage (``*_ImageNet_from_scratch.yml``)."""
    FINETUNE = "finetune"
    """Trained weights of the same scale (``*_finetune_from_ImageNet_pretrain.yml``)."""
    NEW_SCALE = "new-scale"
    """Trained weights of another scale, e.g. x4 from x2 (``*_finetune_from_SRx2.yml``)."""


@dataclass(frozen=True)
class StageRecipe:
    """The official numbers of one kind of stage."""

    lr: float
    steps: int
    milestones: tuple[float, ...]
    """Fractions of ``steps`` at which the learning rate is multiplied by ``GAMMA``."""


_RECIPES = {
    # lr 2e-4, milestones [250000, 400000, 450000, 475000], total_iter 500000
    Kind.SCRATCH: StageRecipe(2e-4, 500_000, (0.5, 0.8, 0.9, 0.95)),
    # lr 2e-4, milestones [300000, 500000, 650000, 700000, 750000], total_iter 800000
    Kind.PRETRAIN: StageRecipe(2e-4, 800_000, (0.375, 0.625, 0.8125, 0.875, 0.9375)),
    # lr 1e-5, milestones [125000, 200000, 225000, 240000], total_iter 250000
    Kind.FINETUNE: StageRecipe(1e-5, 250_000, (0.5, 0.8, 0.9, 0.96)),
    # lr 1e-4, same milestones and length as the fine-tuning files
    Kind.NEW_SCALE: StageRecipe(1e-4, 250_000, (0.5, 0.8, 0.9, 0.96)),
}


def recipe_for(kind: Kind) -> StageRecipe:
    """The official learning rate, length and milestones of a stage of this kind."""
    return _RECIPES[kind]


def lr_at(step: int, steps: int, lr: float, milestones: tuple[float, ...]) -> float:
    """Learning rate of 0-based ``step`` of a ``steps``-long stage: ``lr`` halved at each milestone passed.

    BasicSR steps its MultiStepLR before each iteration (1-based), so iteration ``m`` already runs at the lower rate.
    """
    passed = sum(1 for fraction in milestones if round(fraction * steps) <= step + 1)
    return lr * GAMMA**passed


def _tiny(scale: int) -> HATConfig:
    """The bundled ``hat-tiny-x*`` architecture: 2 RHAGs of 2 HABs, 48 channels, window 8 (0.3 M parameters)."""
    return HATConfig(
        embed_dim=48,
        depths=(2, 2),
        num_heads=(3, 3),
        window_size=8,
        compress_ratio=3,
        squeeze_factor=12,
        mlp_ratio=2.0,
        upscale=scale,
        num_feat=32,
    )


TRAIN_PRESETS = ("HAT-S", "HAT", "HAT-L", "tiny")
"""Architectures ``--from`` can start from scratch; the first three are the official ``network_g`` settings."""


def preset_config(name: str, scale: int) -> HATConfig | None:
    """The architecture of a training preset (case-insensitive) at ``scale``, or None when ``name`` is not one."""
    key = {p.lower(): p for p in TRAIN_PRESETS}.get(name.lower())
    if key is None:
        return None
    if key == "tiny":
        return _tiny(scale)
    return PRESETS[f"{key}_SRx{scale}"]

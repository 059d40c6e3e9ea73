"""HAT hyperparameters as data: the config object, the official presets, and detection from a state_dict.

Names follow the official ``hat_arch.py`` so configs read like the published YAML files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import CheckpointError
from .rgb_mean import OFFICIAL_RGB_MEAN

__all__ = [
    "HATConfig",
    "MAX_WINDOW",
    "PRESETS",
    "check_affordable",
    "check_plausible",
    "detect_config",
    "implied_memory",
]

MAX_WINDOW = 64
"""Largest attention window a weights file may describe (the published models use 16; the index tables grow with
its fourth power: a 64-px window's take 0.4 GB)."""
MAX_OVERLAP_RATIO = 1.0
"""Largest OCAB overlap ratio (the published models use 0.5: a 24-px key window for 16-px queries)."""
MAX_EMBED_DIM = 1024
MAX_BLOCKS = 512


@dataclass(frozen=True)
class HATConfig:
    """Everything that shapes a HAT network. Defaults are those of the official "HAT" (medium) x4 model."""

    embed_dim: int = 180
    depths: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6, 6, 6)
    window_size: int = 16
    overlap_ratio: float = 0.5
    compress_ratio: int = 3
    squeeze_factor: int = 30
    mlp_ratio: float = 2.0
    upscale: int = 4
    resi_connection: str = "1conv"
    in_chans: int = 3
    num_feat: int = 64
    conv_scale: float = 0.01
    img_range: float = 1.0
    qkv_bias: bool = True
    qk_scale: float | None = None
    img_size: int = field(default=64, compare=False)
    rgb_mean: tuple[float, ...] | None = None
    """The mean subtracted from the input, per channel; None: the official DF2K mean (zeros beyond 3 channels).
    Not in the state_dict: it comes from the manifest, the file's metadata or the user (``hat_plugin.rgb_mean``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        if self.rgb_mean is not None:
            object.__setattr__(self, "rgb_mean", tuple(float(m) for m in self.rgb_mean))
        problems = []
        if self.rgb_mean is not None and len(self.rgb_mean) != self.in_chans:
            problems.append(f"rgb_mean has {len(self.rgb_mean)} values for {self.in_chans} channels")
        if len(self.depths) != len(self.num_heads) or not self.depths:
            problems.append("depths and num_heads must be non-empty and of the same length")
        if any(self.embed_dim % h for h in self.num_heads):
            problems.append(f"embed_dim {self.embed_dim} is not divisible by every num_heads {self.num_heads}")
        if self.upscale not in (1, 2, 3, 4, 8, 16):
            problems.append(f"upscale {self.upscale} is not 1, 3 or a power of 2 up to 16")
        if self.resi_connection not in ("1conv", "identity"):
            problems.append(f"resi_connection {self.resi_connection!r} is not '1conv' or 'identity'")
        if self.window_size < 2 or self.img_size <= self.window_size:
            problems.append("window_size must be >= 2 and smaller than img_size")
        if (self.overlap_window_size - self.window_size) % 2:
            problems.append("overlap_ratio must give an even overlap (overlap window - window)")
        if self.compress_ratio < 1 or self.embed_dim // self.compress_ratio < 1:
            problems.append(f"compress_ratio {self.compress_ratio} leaves no CAB channels")
        if self.squeeze_factor < 1 or self.embed_dim // self.squeeze_factor < 1:
            problems.append(f"squeeze_factor {self.squeeze_factor} leaves no channel-attention channels")
        if problems:
            raise ValueError("invalid HAT config: " + "; ".join(problems))

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each axis."""
        return self.upscale

    @property
    def input_mean(self) -> tuple[float, ...]:
        """The per-channel mean the network subtracts: ``rgb_mean``, else the official one (zeros beyond RGB)."""
        if self.rgb_mean is not None:
            return self.rgb_mean
        return OFFICIAL_RGB_MEAN if self.in_chans == 3 else (0.0,) * self.in_chans

    @property
    def shift_size(self) -> int:
        """Shift of the odd (SW-MSA) blocks."""
        return self.window_size // 2

    @property
    def overlap_window_size(self) -> int:
        """Side of the OCAB key/value window."""
        return int(self.window_size * self.overlap_ratio) + self.window_size

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def cab_channels(self) -> int:
        return self.embed_dim // self.compress_ratio

    @property
    def squeeze_channels(self) -> int:
        return self.embed_dim // self.squeeze_factor

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["depths"] = list(self.depths)
        d["num_heads"] = list(self.num_heads)
        d["rgb_mean"] = None if self.rgb_mean is None else list(self.rgb_mean)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HATConfig:
        """Build from an official-style dict; keys without effect at inference are ignored."""
        upsampler = d.get("upsampler", "pixelshuffle")
        if upsampler != "pixelshuffle":
            raise ValueError(f"upsampler {upsampler!r} is not supported (official HAT implements 'pixelshuffle')")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _preset(embed_dim: int, depth_count: int, compress: int, squeeze: int, scale: int) -> HATConfig:
    return HATConfig(
        embed_dim=embed_dim,
        depths=(6,) * depth_count,
        num_heads=(6,) * depth_count,
        compress_ratio=compress,
        squeeze_factor=squeeze,
        upscale=scale,
    )


PRESETS: dict[str, HATConfig] = {}
"""Official variants by checkpoint stem, e.g. ``PRESETS["HAT-S_SRx4"]``."""
for _s in (2, 3, 4):
    PRESETS[f"HAT-S_SRx{_s}"] = _preset(144, 6, 24, 24, _s)
    PRESETS[f"HAT_SRx{_s}"] = _preset(180, 6, 3, 30, _s)
    PRESETS[f"HAT_SRx{_s}_ImageNet-pretrain"] = PRESETS[f"HAT_SRx{_s}"]
    PRESETS[f"HAT-L_SRx{_s}"] = PRESETS[f"HAT-L_SRx{_s}_ImageNet-pretrain"] = _preset(180, 12, 3, 30, _s)
PRESETS["Real_HAT_GAN_SRx4"] = PRESETS["HAT_SRx4"]
PRESETS["Real_HAT_GAN_SRx4_sharper"] = PRESETS["HAT_SRx4"]


_LAYER_KEY = re.compile(r"^layers\.(\d+)\.")
_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")
_REQUIRED = (
    "conv_first.weight",
    "layers.0.residual_group.blocks.0.attn.relative_position_bias_table",
    "layers.0.residual_group.blocks.0.conv_block.cab.0.weight",
    "layers.0.residual_group.blocks.0.conv_block.cab.3.attention.1.weight",
    "layers.0.residual_group.blocks.0.mlp.fc1.weight",
    "layers.0.residual_group.overlap_attn.relative_position_bias_table",
    "conv_last.weight",
)


def _inverse_floor_div(total: int, result: int) -> int:
    """A divisor ``b`` with ``total // b == result`` (the ratios HAT stores only as channel counts)."""
    guess = max(1, total // max(result, 1))
    for b in (guess, *range(1, total + 1)):
        if total // b == result:
            return int(b)
    raise CheckpointError(f"no integer ratio maps {total} channels to {result}")


def implied_memory(config: HATConfig) -> int:
    """Bytes of memory that building ``config``'s network and one forward pass on a single window take at least:
    the float32 weights, the two position index tables (int64, ``ws⁴`` and ``ws²·ows²`` entries) and, per block,
    the attention bias gathered from its table and one window's attention matrix. Known from the configuration
    alone, so a weights file can be judged by its header before anything is allocated."""
    ws, ows, dim = config.window_size, config.overlap_window_size, config.embed_dim
    sa, oca = ws**4, ws * ws * ows * ows
    per_block = dim * dim * (4 + 2 * config.mlp_ratio) + 2 * dim * config.cab_channels * 9
    weights = sum(config.depths) * per_block + len(config.depths) * dim * dim * (4 + 9)
    attention = sum(
        depth * heads * sa + heads * oca for depth, heads in zip(config.depths, config.num_heads, strict=True)
    )
    return int(4 * weights + 8 * (sa + oca) + 2 * 4 * attention)


def check_plausible(config: HATConfig) -> None:
    """Raise ``CheckpointError`` for a geometry no HAT model has (a damaged or malicious header can claim any):
    windows over ``MAX_WINDOW`` pixels, an overlap window more than twice the window, absurd widths or depths."""
    problems = []
    if config.window_size > MAX_WINDOW:
        problems.append(f"a {config.window_size}-px attention window (at most {MAX_WINDOW})")
    if config.overlap_window_size > config.window_size * (1 + MAX_OVERLAP_RATIO):
        problems.append(
            f"a {config.overlap_window_size}-px overlapping window for {config.window_size}-px windows "
            f"(at most {int(config.window_size * (1 + MAX_OVERLAP_RATIO))})"
        )
    if config.embed_dim > MAX_EMBED_DIM:
        problems.append(f"{config.embed_dim} channels (at most {MAX_EMBED_DIM})")
    if sum(config.depths) > MAX_BLOCKS:
        problems.append(f"{sum(config.depths)} attention blocks (at most {MAX_BLOCKS})")
    if problems:
        raise CheckpointError(
            f"the weights describe an implausible HAT network ({'; '.join(problems)}) that would need about "
            f"{_gigabytes(implied_memory(config))} of memory: a damaged or foreign file; refused before loading it"
        )


def check_affordable(config: HATConfig, available: int) -> None:
    """Raise ``CheckpointError`` when ``config``'s network needs more than ``available`` bytes just to load
    (``implied_memory``), before anything is allocated."""
    needed = implied_memory(config)
    if needed > available:
        raise CheckpointError(
            f"the network these weights describe needs about {_gigabytes(needed)} of memory to load "
            f"({config.window_size}-px windows, {config.embed_dim} channels, {sum(config.depths)} blocks), more than "
            f"the {_gigabytes(available)} free: close other programs or use a smaller model"
        )


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:,.1f} GB"


def detect_config(state_dict: Mapping[str, object]) -> HATConfig:
    """Read a HAT config from the key names and tensor shapes of a (canonical) state_dict: anything with a
    ``shape`` will do, so a file's header can be judged before its tensors are read.

    Raises ``CheckpointError`` naming the first missing marker when the dict is not a HAT checkpoint, and for a
    geometry no HAT model has (``check_plausible``).
    """
    for key in _REQUIRED:
        if key not in state_dict:
            raise CheckpointError(f"not a HAT checkpoint: no {key}")
    try:
        config = _detect(state_dict)
    except (ValueError, IndexError, ZeroDivisionError) as exc:  # shapes of the wrong rank, zero-sized, ...
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"not a HAT checkpoint: its tensor shapes do not fit HAT ({exc})") from None
    check_plausible(config)
    return config


def _detect(state_dict: Mapping[str, object]) -> HATConfig:
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state_dict[key].shape)  # type: ignore[attr-defined]

    embed_dim, in_chans = shape("conv_first.weight")[:2]
    num_feat = shape("conv_last.weight")[1]
    # Window sizes from the bias tables ((2ws-1)² and (ws+ows-1)² rows), so files without the derived index
    # buffers (some conversions drop them) are still recognised.
    window_size = (math.isqrt(shape("layers.0.residual_group.blocks.0.attn.relative_position_bias_table")[0]) + 1) // 2
    oca_side = math.isqrt(shape("layers.0.residual_group.overlap_attn.relative_position_bias_table")[0])
    overlap_window = oca_side - window_size + 1
    overlap_ratio = (overlap_window - window_size) / window_size
    if int(window_size * overlap_ratio) + window_size != overlap_window:
        overlap_ratio += 1e-6

    upscale, i = 1, 0
    while f"upsample.{i}.weight" in state_dict:
        out_ch, in_ch = shape(f"upsample.{i}.weight")[:2]
        upscale *= math.isqrt(out_ch // in_ch)
        i += 2

    if embed_dim > MAX_EMBED_DIM:
        raise CheckpointError(
            f"the weights describe an implausible HAT network ({embed_dim} channels, at most "
            f"{MAX_EMBED_DIM}): a damaged or foreign file"
        )
    layer_ids = {int(m.group(1)) for k in state_dict if (m := _LAYER_KEY.match(k))}
    num_layers = max(layer_ids) + 1
    if num_layers > MAX_BLOCKS:
        raise CheckpointError(
            f"the weights describe an implausible HAT network ({num_layers} layers): a damaged or foreign file"
        )
    depths = [0] * num_layers
    for k in state_dict:
        if m := _BLOCK_KEY.match(k):
            li, bi = int(m.group(1)), int(m.group(2))
            depths[li] = max(depths[li], bi + 1)
    num_heads = []
    for li in range(num_layers):
        key = f"layers.{li}.residual_group.overlap_attn.relative_position_bias_table"
        if key not in state_dict or depths[li] == 0:
            raise CheckpointError(f"not a complete HAT checkpoint: layer {li} has no blocks or no {key}")
        num_heads.append(shape(key)[1])

    block0 = "layers.0.residual_group.blocks.0."
    cab_channels = shape(block0 + "conv_block.cab.0.weight")[0]
    squeeze_channels = shape(block0 + "conv_block.cab.3.attention.1.weight")[0]
    mlp_hidden = shape(block0 + "mlp.fc1.weight")[0]
    try:
        return HATConfig(
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            overlap_ratio=overlap_ratio,
            compress_ratio=_inverse_floor_div(embed_dim, cab_channels),
            squeeze_factor=_inverse_floor_div(embed_dim, squeeze_channels),
            mlp_ratio=mlp_hidden / embed_dim,
            upscale=upscale,
            resi_connection="1conv" if "conv_after_body.weight" in state_dict else "identity",
            in_chans=in_chans,
            num_feat=num_feat,
            qkv_bias=block0 + "attn.qkv.bias" in state_dict,
        )
    except ValueError as exc:
        raise CheckpointError(f"HAT checkpoint with an unsupported configuration: {exc}") from None

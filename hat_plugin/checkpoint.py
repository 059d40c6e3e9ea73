"""Reading HAT weights files safely and turning them into a loaded network.

``.pth`` files are read with ``torch.load(weights_only=True)`` (no arbitrary unpickling); ``.safetensors`` with
safetensors. Every failure becomes one ``CheckpointError`` that names the file and what is wrong. The layouts the
trainers write all load: BasicSR/neosr/traiNNer-redux ``params_ema`` (preferred) or ``params``, a bare state_dict,
``module.`` (DataParallel) and ``_orig_mod.`` (``torch.compile``) prefixes, fp16/bf16 tensors, x1 models.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .arch import HAT, relative_position_index_oca, relative_position_index_sa
from .config import HATConfig, check_affordable, detect_config
from .errors import CheckpointError, HATError
from .files import require_regular_file
from .limits import available_memory
from .rgb_mean import RgbMean, mean_from_metadata, parse_rgb_mean
from .weights.api import WEIGHTS_FILE

__all__ = ["read_state_dict", "read_metadata", "stated_rgb_mean", "canonicalize", "load_model", "build_model"]

_WRAPPERS = ("params_ema", "params")
_PREFIXES = ("module.", "_orig_mod.")
_MARKERS = ("conv_first.weight", "layers.0.residual_group.overlap_attn.relative_position_bias_table")
MAX_HEADER_BYTES = 100 << 20
"""safetensors' own limit on the JSON header."""
_INDEX_KEYS = ("relative_position_index_SA", "relative_position_index_OCA")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.ckpt`` or ``.safetensors`` file into a canonical HAT state_dict.

    The format is told by the content, not the name: a safetensors file renamed ``.pth`` loads as safetensors, and
    a PyTorch file named ``.safetensors`` through ``torch.load(weights_only=True)``."""
    path = Path(path)
    size = require_regular_file(path, WEIGHTS_FILE, CheckpointError).st_size
    if size == 0:
        raise CheckpointError(f"{path}: weights file is empty")
    if _is_safetensors(path, size):
        _check_safetensors_header(path, size)
    try:
        if _is_safetensors(path, size):
            raw = load_file(str(path), device="cpu")
        elif path.suffix.lower() == ".safetensors":  # torch.load would go by the name and call safetensors
            with open(path, "rb") as file:
                raw = torch.load(file, map_location="cpu", weights_only=True)
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read weights file: {exc.strerror or exc}") from None
    except Exception as exc:  # any decoding failure of a damaged or foreign file becomes one clear message
        raise CheckpointError(f"{path}: {_unreadable_reason(path, exc)}") from None
    try:
        return canonicalize(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors header (``{}`` for other files or a header without any)."""
    path = Path(path)
    try:
        if not (path.is_file() and _is_safetensors(path, path.stat().st_size)):
            return {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # a damaged header: read_state_dict names the problem when the weights are read
        raise CheckpointError(f"{path}: {_unreadable_reason(path, exc)}") from None


def stated_rgb_mean(path: str | os.PathLike[str]) -> RgbMean | None:
    """The RGB mean recorded for a weights file: its manifest entry's (bundled, downloaded or added by the user),
    else its safetensors metadata's; None when nothing says (the official mean then applies)."""
    from . import weights  # the network code is usable without the download stack

    entry = weights.entry_for_file(path)
    if entry is not None and entry.rgb_mean is not None:
        return parse_rgb_mean(entry.rgb_mean)
    try:
        return mean_from_metadata(read_metadata(path))
    except CheckpointError:
        return None
    except HATError as exc:
        raise CheckpointError(f"{path}: the rgb_mean in its metadata is unusable: {exc}") from None


def _unreadable_reason(path: Path, exc: Exception) -> str:
    """Why a weights file could not be decoded, in words that never suggest unsafe loading."""
    text = str(exc).strip()
    if _looks_like_text(path):
        return "it is a web page or text, not weights (a failed or blocked download?)"
    if "unsupported global" in text.casefold():
        return (
            "it holds Python objects besides tensors, which are refused for safety (loading them could run code); "
            "use a plain weights file (.safetensors, or a .pth of tensors) from a source you trust"
        )
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        return "not a readable weights file (truncated or corrupt?): not a PyTorch or safetensors file"
    first = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
    return f"not a readable weights file (truncated or corrupt?): {first}"


def _is_safetensors(path: Path, size: int) -> bool:
    """Whether the file starts like safetensors: an 8-byte little-endian header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 2 <= length <= size - 8


class _Claimed:
    """A tensor as a file's header describes it (shape only), for judging the file before reading its data."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape


def _check_safetensors_header(path: Path, size: int) -> None:
    """Judge a safetensors file by its header alone, before any tensor is read: the data it claims must lie within
    the file, and the HAT network its shapes describe must be plausible and fit in the free memory (a header can
    claim any window size). A header that is not HAT's is left to the reader's own checks."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(min(length, MAX_HEADER_BYTES)))
        except (ValueError, UnicodeDecodeError):
            return  # the reader reports the damage in its words
    if not isinstance(header, dict):
        return
    shapes: dict[str, _Claimed] = {}
    claimed = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            return
        if isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets):
            claimed = max(claimed, offsets[1])
        shapes[name.removeprefix("module.")] = _Claimed(tuple(shape))
    if claimed > size - 8 - length:
        raise CheckpointError(
            f"{path}: not a readable weights file (truncated or corrupt?): its header claims {claimed:,} bytes of "
            f"tensors but the file holds {size - 8 - length:,}; download it again"
        )
    if all(key in shapes for key in _MARKERS):
        try:
            check_affordable(detect_config(shapes), available_memory())
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def _looks_like_text(path: Path) -> bool:
    """Whether the file starts like an HTML/XML/JSON page or plain text rather than binary weights."""
    with open(path, "rb") as f:
        head = f.read(512)
    return head.lstrip()[:1] in (b"<", b"{") or (bool(head) and all(32 <= b < 127 or b in b"\t\r\n" for b in head))


def _is_zip(path: Path) -> bool:
    """Zip-format ``.pth`` files can be memory-mapped; legacy ones cannot."""
    return zipfile.is_zipfile(path)


def canonicalize(obj: object) -> dict[str, torch.Tensor]:
    """Unwrap BasicSR's ``params_ema`` (else ``params``: files holding both are the EMA's) and strip ``module.``
    (DataParallel) and ``_orig_mod.`` (``torch.compile``) prefixes."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"not a state_dict: the file holds a {type(obj).__name__}")
    for key in _WRAPPERS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    sd: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"not a state_dict: entry {key!r} is a {type(value).__name__}, not a tensor")
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        sd[key] = value
    return sd


def build_model(config: HATConfig, device: str | torch.device = "cpu") -> HAT:
    """A HAT network for ``config`` (random weights), for training or shape checks."""
    with torch.device(device):
        return HAT(config)


def load_model(
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    rgb_mean: str | Sequence[float] | None = None,
) -> HAT:
    """Load a HAT checkpoint: a weights file, a manifest model name, or a state_dict.

    The configuration is detected from the key shapes and the weights are loaded with ``strict=True``. The RGB
    mean is ``rgb_mean`` when given (``official``, ``0.5``, ``R,G,B`` or numbers), else the one recorded for the
    file (``stated_rgb_mean``), else the official one; ``model.config.rgb_mean`` holds it.
    Returns the network in eval mode with gradients off, on ``device`` in ``dtype``.
    """
    name = str(source) if not isinstance(source, Mapping) else "state_dict"
    mean = parse_rgb_mean(rgb_mean) if rgb_mean is not None else None
    if isinstance(source, Mapping):
        sd = canonicalize(source)
    else:
        path = _resolve_source(source)
        sd = read_state_dict(path)
        if mean is None:
            mean = _named_mean(source) or stated_rgb_mean(path)
    try:
        config = detect_config(sd)
        check_affordable(config, available_memory())
        _check_supported(sd, config)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    if mean is not None:
        if config.in_chans != 3:
            raise CheckpointError(f"{name}: an RGB mean applies to 3-channel models, this one has {config.in_chans}")
        config = replace(config, rgb_mean=mean)
    _check_index_buffers(sd, config, name)
    model = build_model(config, device="meta")
    # Fresh copies: tensors read from a file can sit at unaligned offsets of its buffer, and CPU kernels then round
    # differently from aligned copies (a video chunk on a Ray worker must give the bits of the local run).
    sd = {k: (v.to(torch.float32, copy=True) if v.is_floating_point() else v.clone()) for k, v in sd.items()}
    try:
        result = model.load_state_dict(sd, strict=False, assign=True)
    except RuntimeError as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        raise CheckpointError(f"{name}: weights do not fit the detected HAT config: {detail[:500]}") from None
    problems = []
    if result.missing_keys:
        problems.append("missing keys: " + _short(result.missing_keys))
    if result.unexpected_keys:
        problems.append("unexpected keys: " + _short(result.unexpected_keys))
    if problems:
        raise CheckpointError(f"{name}: not a complete HAT checkpoint ({'; '.join(problems)})")
    model.eval().requires_grad_(False)
    model.source = name  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors and modules
    return model.to(device=device, dtype=dtype)


def _check_supported(sd: Mapping[str, torch.Tensor], config: HATConfig) -> None:
    """Refuse what loads but cannot run: quantized or integer weights, networks for other than 3-channel RGB."""
    for key, value in sd.items():
        if key in _INDEX_KEYS:
            continue
        if value.is_quantized or not value.is_floating_point():
            kind = "quantized" if value.is_quantized else str(value.dtype).removeprefix("torch.")
            raise CheckpointError(
                f"{key} holds {kind} values: quantized or integer weights are not supported; use the float "
                "(fp32/fp16/bf16) weights of the model, or dequantize them first"
            )
    if config.in_chans != 3:
        raise CheckpointError(
            f"the weights are for {config.in_chans}-channel images; only RGB (3-channel) HAT models are supported "
            "(grey images are upscaled by RGB models)"
        )


def _resolve_source(source: str | os.PathLike[str]) -> Path:
    """A weights file as is; a manifest name (e.g. ``HAT-S_SRx4``) through the weights cache."""
    from . import weights  # imported here: the network code is usable without the download stack

    return weights.resolve(source)


def _named_mean(source: str | os.PathLike[str]) -> RgbMean | None:
    """The mean of the manifest entry a model name (not a path) stands for."""
    from . import weights

    if isinstance(source, os.PathLike) or Path(source).exists():
        return None
    try:
        mean = weights.get_entry(str(source)).rgb_mean
    except HATError:
        return None
    return parse_rgb_mean(mean) if mean is not None else None


def _check_index_buffers(sd: dict[str, torch.Tensor], config: HATConfig, name: str) -> None:
    """The two index buffers are derived data: add them if a conversion dropped them, refuse them if corrupt."""
    expected = {
        "relative_position_index_SA": relative_position_index_sa(config.window_size),
        "relative_position_index_OCA": relative_position_index_oca(config.window_size, config.overlap_window_size),
    }
    for key in _INDEX_KEYS:
        if key not in sd:
            sd[key] = expected[key]
        elif sd[key].shape != expected[key].shape or not torch.equal(sd[key].long(), expected[key]):
            raise CheckpointError(f"{name}: {key} does not hold the standard HAT position index (corrupt file?)")
        else:
            sd[key] = expected[key]


def _short(keys: list[str], limit: int = 5) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more

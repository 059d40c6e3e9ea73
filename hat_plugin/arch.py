"""The HAT network (Chen et al., "Activating More Pixels in Image Super-Resolution Transformer", CVPR 2023).

An implementation of our own whose ``state_dict()`` has exactly the keys, shapes and dtypes of the official
checkpoints (XPixelGroup/HAT ``hat_arch.py``), so the published weights load with ``strict=True``.
It computes the same function as the official forward pass, organised for inference speed:

- the token stream is kept as ``(B, H, W, C)``; permuted to ``(B, C, H, W)`` it is a channels-last tensor, so the
  convolutions run without layout copies;
- attention is ``scaled_dot_product_attention`` with the relative-position bias as an additive mask; the bias is
  gathered once per weights (not per forward);
- shifted windows are gathered straight from the unshifted stream (roll and window partition in one indexed
  copy, and one back), ordered in four groups (interior, last column, last row, corner) that each share one
  mask, so the ``(windows, heads, N, N)`` mask of the official code is never materialised;
- OCAB key/value windows are gathered from the padded tensor with a cached index (one copy, one ONNX Gather)
  instead of ``nn.Unfold`` + rearrange;
- under fp16/bf16 weights the residual stream and LayerNorm statistics stay in fp32 (see ``HAT.forward``);
- in float32 inference on the CPU the Linear layers run as 1x1 convolutions (oneDNN adds the bias inside its
  kernel; ``F.linear`` first copies it into the whole output), the window outputs are added to the stream through a
  strided view instead of being copied back into image order first, the conv branch's ``conv_scale`` is folded into
  its channel-attention gate, and the shifted windows' four mask groups share one qkv and one output projection.

Layout of the module tree (names = state_dict keys): ``HAT`` -> ``layers[i]`` (RHAG) -> ``residual_group``
-> ``blocks[j]`` (HAB) and ``overlap_attn`` (OCAB).
"""

from __future__ import annotations

import functools
import math
import platform
from collections.abc import Callable, Hashable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import HATConfig
from .streams import Shared, SizeCache, lookup

__all__ = ["HAT", "relative_position_index_sa", "relative_position_index_oca", "pad_to_multiple"]

# Shifted-window mask value. The official code adds -100, whose softmax weights (about e^-100 = 4e-44) are fp32
# denormals: exactly as negligible as zero in the output, but the CPU computes with denormals many times slower
# (masked windows took 25 % longer). -1e4 underflows to an exact 0 instead; finite, so fp16 stays safe.
_MASKED = -1e4
# OCAB gathers its key/value windows in chunks of at most this many bytes: under glibc's largest mmap threshold
# (32 MiB), so the allocator reuses the buffer instead of mapping (and faulting in) a fresh one per chunk.
_KV_CHUNK_BYTES = 16 << 20


def relative_position_index_sa(window_size: int) -> Tensor:
    """Swin relative-position index, ``(ws², ws²)`` int64, row = query token, column = key token."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def relative_position_index_oca(window_size: int, overlap_window_size: int) -> Tensor:
    """OCAB index, ``(ws², ows²)`` int64. Values are partly negative, exactly as in the official checkpoints;
    indexing the table with them wraps around (PyTorch advanced indexing), which is what the weights expect."""
    ws, ows = window_size, overlap_window_size
    ori = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    ext = torch.stack(torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")).flatten(1)
    rel = (ext[:, None, :] - ori[:, :, None]).permute(1, 2, 0) + (ws - ows + 1)
    return rel[..., 0] * (ws + ows - 1) + rel[..., 1]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad bottom and right of ``(B, C, H, W)`` to a multiple of ``multiple``: reflect (as the official
    pre-processing does), then replicate for the part a too-small image cannot reflect."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return x
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    if reflect_h or reflect_w:
        x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if reflect_h < pad_h or reflect_w < pad_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return x


def _window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` -> ``(B*nW, ws*ws, C)``, windows batch-major then row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _add_windows(x: Tensor, windows: Tensor, ws: int) -> Tensor:
    """``x`` plus ``(B*nW, ws*ws, C)`` windows put back in image order (the inverse of ``_window_partition``), in
    one pass: the windows are read through a strided view instead of being copied into image order first."""
    b, h, w, c = x.shape
    image_order = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return (x.view(b, h // ws, ws, w // ws, ws, c) + image_order).reshape(b, h, w, c)


class DerivedCache:
    """Tensors a module derives from its weights or its configuration, kept by that module.

    Each value is a ``streams.Shared``: made on one CUDA stream, handed to every other stream in order. A copy of
    the module (``copy.deepcopy``, e.g. the engine's fp32 twin) starts with an empty cache rather than sharing or
    duplicating tensors that belong to another device or dtype.
    """

    def __init__(self) -> None:
        self.entries: dict[object, tuple[object, Shared[Any]]] = {}

    def __deepcopy__(self, memo: dict[int, object]) -> DerivedCache:
        return DerivedCache()

    def get[T](self, name: Hashable, key: Hashable, make: Callable[[], T]) -> T:
        """The value stored under ``name`` if it was made for ``key``, else ``make()`` (stored for next time)."""

        def find() -> Shared[T] | None:
            hit = self.entries.get(name)
            return hit[1] if hit is not None and hit[0] == key else None

        def build() -> Shared[T]:
            entry = Shared(make())
            self.entries[name] = (key, entry)
            return entry

        return lookup((id(self), name, key), find, build)


def _per_size[R](make: Callable[..., R]) -> Callable[..., R]:
    """``make`` (an index that depends only on sizes and a device) kept for the last few sizes, shared across CUDA
    streams in order (``streams.SizeCache``), and computed afresh while tracing, where the graph must record the
    ops rather than a tensor of another trace. ``make`` runs outside inference mode, so a kept index also serves a
    later forward that autograd records."""
    make = torch.inference_mode(False)(make)
    kept = SizeCache(maxsize=8)

    @functools.wraps(make)
    def get(*args: Hashable) -> R:
        return make(*args) if _tracing() else kept.get(args, lambda: make(*args))

    return get


@_per_size
def _overlap_windows(b: int, ws: int, ows: int, height: int, width: int, device: torch.device) -> Tensor:
    """Row indices into ``b`` zero-padded ``(H + ows - ws, W + ows - ws)`` grids, flattened to one
    ``(b * padded pixels, C)`` matrix, of every ``ows x ows`` window taken every ``ws`` pixels: images, then
    windows row-major, then pixels row-major: ``(b * nW * ows * ows,)`` int64.

    A gather with these indices is what ``nn.Unfold`` computes, in one copy of whole rows (the fast form of
    ``index_select``), and exports to ONNX as one Gather.
    """
    padded_w = width + ows - ws
    top = torch.arange(0, height, ws, device=device)
    left = torch.arange(0, width, ws, device=device)
    inner = torch.arange(ows, device=device)
    rows = (top[:, None] + inner[None, :]) * padded_w  # (nH, ows)
    cols = left[:, None] + inner[None, :]  # (nW, ows)
    one = (rows[:, None, :, None] + cols[None, :, None, :]).reshape(-1)
    images = torch.arange(b, device=device) * ((height + ows - ws) * padded_w)
    return (images[:, None] + one[None, :]).reshape(-1)


@_per_size
def _shifted_windows(
    b: int, height: int, width: int, ws: int, shift: int, device: torch.device
) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Where the shifted windows' tokens are in the unshifted ``(B*H*W, C)`` stream, in mask-group order.

    Returns ``(index, inverse, sizes)``: ``stream[index]`` is every window of the stream rolled by ``-shift``,
    grouped as interior windows, last column, last row, corner (each group of all images shares one mask;
    ``sizes`` counts each group's windows), tokens row-major; ``windows[inverse]`` puts them back, the roll undone.
    """
    rows, cols = height // ws, width // ws
    inner_r, inner_c = (
        t.reshape(-1) for t in torch.meshgrid(torch.arange(rows - 1), torch.arange(cols - 1), indexing="ij")
    )
    groups = (
        (inner_r, inner_c),
        (torch.arange(rows - 1), torch.full((rows - 1,), cols - 1)),
        (torch.full((cols - 1,), rows - 1), torch.arange(cols - 1)),
        (torch.tensor([rows - 1]), torch.tensor([cols - 1])),
    )
    token_r, token_c = (t.reshape(-1) for t in torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    images = torch.arange(b) * (height * width)
    parts = []
    for window_r, window_c in groups:
        r = (window_r[:, None] * ws + token_r[None, :] + shift) % height  # (windows, tokens)
        c = (window_c[:, None] * ws + token_c[None, :] + shift) % width
        parts.append((images[:, None, None] + (r * width + c)[None]).reshape(-1))
    index = torch.cat(parts)
    sizes = tuple(b * len(window_r) for window_r, _ in groups)
    return index.to(device), torch.argsort(index).to(device), sizes


def _cached[T](cache: DerivedCache, name: str, sources: tuple[Tensor, ...], make: Callable[[], T]) -> T:
    """A tensor derived from parameters, computed once and reused until a source tensor changes.

    Only used without autograd (inference): in training the derived tensor is rebuilt every call so gradients
    flow to the parameters. Under ``torch.compile`` it is computed inside the graph (the cache's bookkeeping
    would break the graph, and the gather is cheap).
    """
    if torch.is_grad_enabled() or _tracing():
        return make()
    key = tuple((t.data_ptr(), None if t.is_inference() else t._version, t.dtype, t.device) for t in sources)
    return cache.get(name, key, make)


def _tracing() -> bool:
    """Whether the forward pass is being traced (ONNX export, ``torch.export``, ``torch.compile``, TorchScript
    tracing): the tensors may be fake, so per-weights caches are bypassed and derived tensors are computed inline."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]


def _layer_norm(norm: nn.LayerNorm, x: Tensor, out_dtype: torch.dtype) -> Tensor:
    """LayerNorm with statistics in the stream's precision, output in the compute precision."""
    w: Tensor = norm.weight
    b: Tensor = norm.bias
    if w.dtype != x.dtype:
        w, b = w.to(x.dtype), b.to(x.dtype)
    return F.layer_norm(x, norm.normalized_shape, w, b, norm.eps).to(out_dtype)


@functools.cache
def _onednn_x86() -> bool:
    """Whether this PyTorch runs CPU convolutions through oneDNN on an x86 CPU (where ``_linear`` was measured)."""
    available = bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
    return available and platform.machine().lower() in ("x86_64", "amd64")


def _linear(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)``, for a float32 ``nn.Linear`` on the CPU in inference computed as a 1x1 convolution of the tokens
    seen as a channels-last image: the same product, run by oneDNN, whose kernel adds the bias as it writes the
    output, where ``F.linear`` first copies the bias into the whole output and then accumulates the product onto it.
    Any other case (training, tracing, other dtypes and devices, int8 layers, one thread, a build or CPU without
    oneDNN's x86 kernels, oneDNN switched off) calls the layer."""
    if (
        not _onednn_x86()
        or not torch.backends.mkldnn.enabled
        or type(layer) is not nn.Linear
        or x.dtype != torch.float32
        or x.device.type != "cpu"
        or torch.is_grad_enabled()
        or _tracing()
        or torch.get_num_threads() < 2  # PyTorch sends a 1x1 convolution on one thread to its slower own kernel
    ):
        return layer(x)
    weight: Tensor = layer.weight
    out_features, in_features = weight.shape
    image = x.reshape(1, -1, 1, in_features).permute(0, 3, 1, 2)  # (1, C, tokens, 1), channels-last
    out = F.conv2d(image, weight.view(out_features, in_features, 1, 1), layer.bias)
    return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], out_features)


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float, pad_heads: bool) -> Tensor:
    """``scaled_dot_product_attention`` with an additive mask; heads zero-padded to a multiple of 8 channels when
    ``pad_heads`` (zero channels add nothing to ``q @ k.T``, and the padded output channels are cut off)."""
    d = q.shape[-1]
    if pad_heads and d % 8:
        pad = (0, -d % 8)
        out = F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), attn_mask=mask, scale=scale)
        return out[..., :d]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf form) -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return _linear(self.fc2, self.act(_linear(self.fc1, x)))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: scales each channel by a gate computed from the global average."""

    def __init__(self, dim: int, squeeze: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, squeeze, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeeze, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)

    def gate(self, x: Tensor) -> Tensor:
        """The ``(B, C, 1, 1)`` factors that ``forward`` multiplies ``x`` by."""
        gate: Tensor = self.attention(x)
        return gate


class CAB(nn.Module):
    """Channel attention block: conv3x3 -> GELU -> conv3x3 -> channel attention."""

    def __init__(self, dim: int, compressed: int, squeeze: int) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(dim, compressed, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(compressed, dim, 3, 1, 1),
            ChannelAttention(dim, squeeze),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``forward(x)`` as its two factors: the features before the channel attention and that attention's
        ``(B, C, 1, 1)`` gate, so a caller can fold further scaling into the small gate."""
        features = self.cab[2](self.cab[1](self.cab[0](x)))
        attention = self.cab[3]
        assert isinstance(attention, ChannelAttention)
        return features, attention.gate(features)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``ws x ws`` windows with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool, qk_scale: float | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.derived = DerivedCache()
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pad_heads = False  # set for the whole network by HAT.pad_heads

    def position_bias(self, index: Tensor) -> Tensor:
        """``(1, nH, N, N)`` bias gathered from the table; cached until the weights change."""
        table = self.relative_position_bias_table

        def make() -> Tensor:
            n = index.shape[0]
            return table[index.reshape(-1)].view(n, n, -1).permute(2, 0, 1).unsqueeze(0).contiguous()

        return _cached(self.derived, "bias", (table, index), make)

    def shifted_masks(self, index: Tensor, shift_masks: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The bias plus each seam mask (last column, last row, corner), precombined once per weights."""
        table = self.relative_position_bias_table

        def make() -> tuple[Tensor, ...]:
            bias = self.position_bias(index)
            return tuple((bias + m).to(bias.dtype).contiguous() for m in shift_masks)

        return _cached(self.derived, "shifted", (table, index, *shift_masks), make)

    def forward(self, windows: Tensor, masks: tuple[Tensor, ...], sizes: tuple[int, ...] | None = None) -> Tensor:
        """``windows`` ``(G, N, C)`` -> ``(G, N, C)``; the windows come in consecutive groups of ``sizes`` windows
        (default: one group of all), each attending with its additive ``(1, nH, N, N)`` mask (bias + shift mask)
        from ``masks``. The projections run once over all groups (one large matrix product rather than one
        small one per group).

        The masks must be 4-D: with a 3-D mask PyTorch's CPU dispatcher falls back from the fused (flash)
        kernel to the unfused math path, about 6x slower on these shapes.
        """
        g, n, c = windows.shape
        qkv = _linear(self.qkv, windows).view(g, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        parts, start = [], 0
        for count, mask in zip(sizes or (g,), masks, strict=True):
            if count:
                end = start + count
                attended = _attention(
                    q[start:end], k[start:end], v[start:end], mask.to(q.dtype), self.scale, self.pad_heads
                )
                parts.append(attended.transpose(1, 2))
                start = end
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return _linear(self.proj, out.reshape(g, n, c))


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention + a scaled channel-attention conv branch, then MLP."""

    def __init__(self, cfg: HATConfig, num_heads: int, shift: int) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.window_size = cfg.window_size
        self.shift = shift
        self.conv_scale = cfg.conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, cfg.window_size, num_heads, cfg.qkv_bias, cfg.qk_scale)
        self.conv_block = CAB(dim, cfg.cab_channels, cfg.squeeze_channels)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, cfg.mlp_hidden)

    def forward(self, x: Tensor, rpi_sa: Tensor, shift_masks: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """``x``: ``(B, H, W, C)`` residual stream; H and W are multiples of the window size."""
        compute = self.norm1.weight.dtype  # the model's precision (a quantized Linear has no weight tensor)
        h = _layer_norm(self.norm1, x, compute)
        # x + attention + conv_scale * conv branch, with conv_scale folded into the channel-attention gate (a
        # (B, C, 1, 1) tensor) and the branch multiplied in by the same pass that adds it.
        features, gate = self.conv_block.parts(h.permute(0, 3, 1, 2))
        x = self._attend(x, h, rpi_sa, shift_masks)
        x = x.addcmul_(features.permute(0, 2, 3, 1), (gate * self.conv_scale).permute(0, 2, 3, 1))
        return x + self.mlp(_layer_norm(self.norm2, x, compute))

    def _attend(self, x: Tensor, h: Tensor, rpi_sa: Tensor, shift_masks: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """``x`` plus the (shifted) window attention of ``h``, as a new tensor."""
        b, height, width, _ = h.shape
        ws, s = self.window_size, self.shift
        bias = self.attn.position_bias(rpi_sa)
        if not s:
            return _add_windows(x, self.attn(_window_partition(h, ws), (bias,)), ws)
        # Shifted windows, gathered by groups that share one mask: only windows in the last row or column
        # straddle the roll's wrap-around; the interior ones need the plain bias.
        c = h.shape[-1]
        index, inverse, sizes = _shifted_windows(b, height, width, ws, s, h.device)
        windows = h.reshape(-1, c).index_select(0, index).view(-1, ws * ws, c)
        out = self.attn(windows, (bias, *self.attn.shifted_masks(rpi_sa, shift_masks)), sizes)
        return x + out.view(-1, c).index_select(0, inverse).view(b, height, width, c)


class OCAB(nn.Module):
    """Overlapping cross-attention: queries from ``ws`` windows, keys/values from enlarged ``ows`` windows."""

    def __init__(self, cfg: HATConfig, num_heads: int) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.window_size = cfg.window_size
        self.overlap_window_size = cfg.overlap_window_size
        self.num_heads = num_heads
        self.scale = cfg.qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((cfg.window_size + cfg.overlap_window_size - 1) ** 2, num_heads)
        )
        self.derived = DerivedCache()
        self.pad_heads = False  # set for the whole network by HAT.pad_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=cfg.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, cfg.mlp_hidden)

    def position_bias(self, index: Tensor) -> Tensor:
        """``(1, nH, ws², ows²)`` bias (4-D: see ``WindowAttention.forward``); negative indices wrap around as
        in the official lookup."""
        table = self.relative_position_bias_table

        def make() -> Tensor:
            n, m = index.shape
            return table[index.reshape(-1)].view(n, m, -1).permute(2, 0, 1).unsqueeze(0).contiguous()

        return _cached(self.derived, "bias", (table, index), make)

    def forward(self, x: Tensor, rpi_oca: Tensor) -> Tensor:
        b, height, width, c = x.shape
        ws, ows, nh = self.window_size, self.overlap_window_size, self.num_heads
        d = c // nh
        compute = self.norm1.weight.dtype  # the model's precision (a quantized Linear has no weight tensor)
        qkv = _linear(self.qkv, _layer_norm(self.norm1, x, compute))
        q = _window_partition(qkv[..., :c], ws)
        g = q.shape[0]
        # Key/value windows: zero-pad after the projection (padded keys and values are exactly 0), then gather
        # the ows x ows window every ws pixels: the same windows, in the same order, as the official Unfold.
        # Gathered a chunk of windows at a time: the key/value windows repeat each pixel (ows/ws)^2 times, so all
        # of them at once would be the largest buffer of the block (130 MB for a 224-px HAT-S tile), a fresh
        # mapping the kernel faults in page by page on every call (see _KV_CHUNK_BYTES).
        pad = (ows - ws) // 2
        padded = F.pad(qkv[..., c:], (0, 0, pad, pad, pad, pad)).reshape(-1, 2 * c)
        index = _overlap_windows(b, ws, ows, height, width, x.device)
        q = q.view(g, ws * ws, nh, d).transpose(1, 2)
        bias = self.position_bias(rpi_oca).to(q.dtype)
        per_window = ows * ows * 2 * c * padded.element_size()
        chunk = g if _tracing() else max(1, _KV_CHUNK_BYTES // per_window)
        parts = []
        for start in range(0, g, chunk):
            n = min(chunk, g - start)
            kv = padded.index_select(0, index[start * ows * ows : (start + n) * ows * ows]).view(n, ows * ows, 2 * c)
            k = kv[..., :c].view(n, ows * ows, nh, d).transpose(1, 2)
            v = kv[..., c:].view(n, ows * ows, nh, d).transpose(1, 2)
            attended = _attention(q[start : start + n], k, v, bias, self.scale, self.pad_heads)
            parts.append(attended.transpose(1, 2).reshape(n, -1, c))
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        x = _add_windows(x, _linear(self.proj, out), ws)  # the projection is per token: applied in window order
        return x + self.mlp(_layer_norm(self.norm2, x, compute))


class AttenBlocks(nn.Module):
    """The HABs of one RHAG (alternately plain and shifted windows), then its OCAB."""

    def __init__(self, cfg: HATConfig, depth: int, num_heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(HAB(cfg, num_heads, 0 if j % 2 == 0 else cfg.shift_size) for j in range(depth))
        self.overlap_attn = OCAB(cfg, num_heads)

    def forward(self, x: Tensor, rpi_sa: Tensor, rpi_oca: Tensor, shift_masks: tuple[Tensor, ...]) -> Tensor:
        for block in self.blocks:
            x = block(x, rpi_sa, shift_masks)
        return self.overlap_attn(x, rpi_oca)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks, then a 3x3 conv, around a residual connection."""

    def __init__(self, cfg: HATConfig, depth: int, num_heads: int) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(cfg, depth, num_heads)
        dim = cfg.embed_dim
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1) if cfg.resi_connection == "1conv" else nn.Identity()

    def forward(self, x: Tensor, rpi_sa: Tensor, rpi_oca: Tensor, shift_masks: tuple[Tensor, ...]) -> Tensor:
        y = self.residual_group(x, rpi_sa, rpi_oca, shift_masks).permute(0, 3, 1, 2)
        if isinstance(self.conv, nn.Conv2d) and self.conv.weight.dtype != y.dtype:
            y = _scaled_conv(self.conv, y)
        else:
            y = self.conv(y)
        return x + y.permute(0, 2, 3, 1)


def _scaled_conv(conv: nn.Conv2d, y: Tensor) -> Tensor:
    """A half-precision conv of the un-normalised fp32 stream, the one place where its magnitude reaches a
    matrix product: scale by a power of two into fp16's range, convolve, scale back in fp32, add the bias."""
    peak = y.abs().amax().clamp_min(1.0)
    scale = torch.exp2(torch.ceil(torch.log2(peak)) - 8)  # inputs at most 256 in magnitude
    out = F.conv2d((y / scale).to(conv.weight.dtype), conv.weight, None, conv.stride, conv.padding)
    assert conv.bias is not None  # every HAT conv has a bias
    return out.to(y.dtype) * scale + conv.bias.to(y.dtype).view(1, -1, 1, 1)


class PatchEmbed(nn.Module):
    """Holds the LayerNorm applied to the tokens after ``conv_first`` (patch size 1: no projection)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class HAT(nn.Module):
    """HAT super-resolution network.

    ``forward`` takes ``(B, in_chans, H, W)`` images of any size in [0, 1] (not clamped), pads them to a multiple
    of the window size internally (reflect) and returns ``(B, in_chans, H*scale, W*scale)``.
    """

    def __init__(self, config: HATConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or HATConfig()
        dim, nf = cfg.embed_dim, cfg.num_feat
        self.register_buffer("relative_position_index_SA", relative_position_index_sa(cfg.window_size))
        self.register_buffer(
            "relative_position_index_OCA", relative_position_index_oca(cfg.window_size, cfg.overlap_window_size)
        )
        self._mean = cfg.input_mean
        self.derived = DerivedCache()  # seam masks and the RGB mean per dtype and device

        self.conv_first = nn.Conv2d(cfg.in_chans, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim)
        self.layers = nn.ModuleList(RHAG(cfg, d, h) for d, h in zip(cfg.depths, cfg.num_heads, strict=True))
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1) if cfg.resi_connection == "1conv" else nn.Identity()
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, nf, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = _upsampler(cfg.upscale, nf)
        self.conv_last = nn.Conv2d(nf, cfg.in_chans, 3, 1, 1)

    @property
    def scale(self) -> int:
        return self.config.upscale

    @property
    def pad_heads(self) -> bool:
        """Whether attention heads are zero-padded to a multiple of 8 channels (HAT and HAT-L have 30): exact, and
        on CUDA PyTorch's memory-efficient kernel, which needs aligned heads, can then replace the unfused math
        path. Off by default until ``bench/gpu_check.sh`` has measured it on a GPU (``EngineOptions.pad_heads``)."""
        return any(m.pad_heads for m in self.modules() if isinstance(m, WindowAttention | OCAB))

    @pad_heads.setter
    def pad_heads(self, on: bool) -> None:
        for module in self.modules():
            if isinstance(module, WindowAttention | OCAB):
                module.pad_heads = on

    def _shift_masks(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Masks of the windows that straddle the roll's wrap-around: last column, last row, corner.

        They depend only on the window and shift sizes, not on the image size, so they are built once.
        """

        def make() -> tuple[Tensor, Tensor, Tensor]:
            ws, s = self.config.window_size, self.config.shift_size
            part = (torch.arange(ws, device=device) >= ws - s).long()
            row_label = part.repeat_interleave(ws)  # which side of the seam each token's row is on
            col_label = part.repeat(ws)
            last_col, last_row, corner = (
                torch.zeros((), dtype=dtype, device=device).masked_fill(lab[:, None] != lab[None, :], _MASKED)
                for lab in (col_label, row_label, row_label * 2 + col_label)
            )
            return last_col, last_row, corner

        return make() if _tracing() else self.derived.get(("masks", dtype, device), None, make)

    def mean(self, like: Tensor) -> Tensor:
        """The dataset RGB mean as ``(1, C, 1, 1)`` in ``like``'s dtype (kept out of the state_dict, as upstream)."""

        def make() -> Tensor:
            # float32 first: upstream stores the mean as a float32 tensor and casts it to the input's dtype.
            mean = torch.tensor(self._mean, dtype=torch.float32).to(like.dtype)
            return mean.to(like.device).view(1, -1, 1, 1)

        return make() if _tracing() else self.derived.get(("mean", like.dtype, like.device), None, make)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` in the compute dtype -> ``(B, C, H, W)``, same dtype.

        In half precision the residual stream between blocks is float32: it carries the sum of every block's
        output and is what would overflow; the blocks' matrix products still run in half precision.
        """
        stream = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        compute = x.dtype
        tokens = _layer_norm(self.patch_embed.norm, x.permute(0, 2, 3, 1).to(stream).contiguous(), stream)
        shift_masks = self._shift_masks(stream, x.device)
        for layer in self.layers:
            tokens = layer(tokens, self.relative_position_index_SA, self.relative_position_index_OCA, shift_masks)
        return _layer_norm(self.norm, tokens, compute).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        compute = self.conv_first.weight.dtype
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        x = pad_to_multiple(x, self.config.window_size)
        mean = self.mean(x)
        x = ((x - mean) * self.config.img_range).to(compute)
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        x = x.to(mean.dtype) / self.config.img_range + mean
        s = self.config.upscale
        return x[..., : height * s, : width * s]


def _upsampler(scale: int, num_feat: int) -> nn.Sequential:
    """Conv + PixelShuffle stages: log2(scale) x2 stages, or one x3 stage."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale {scale} is not supported (powers of 2 and 3)")
    return nn.Sequential(*layers)

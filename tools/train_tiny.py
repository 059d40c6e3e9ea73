"""Train a small HAT (our implementation, official state_dict layout) on CPU for the bundled ``hat-tiny-x*`` models.

Reproducible: one seed drives the weight init and the patch sampler, algorithms are deterministic and the thread
count is fixed, so the same command on the same data gives the same weights (on the same PyTorch build and CPU
kind; elsewhere, weights of the same quality). The exact commands are in ``tools/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from hat_plugin import HAT, HATConfig, HATError
from hat_plugin.checkpoint import build_model, read_state_dict
from hat_plugin.files import atomic_path

from .data import DEFAULT_DIR, DataError, PatchSampler, image_files
from .imresize import cubic

__all__ = ["init_weights", "main", "train"]


def init_weights(model: nn.Module) -> None:
    """The official HAT initialisation: truncated normal (std 0.02) for linear layers and position-bias tables,
    zero biases, unit LayerNorms; convolutions keep PyTorch's default."""
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


def _subpixel_kernels() -> torch.Tensor:
    """``(4, 3, 3)`` kernels that turn one LR pixel's 3x3 neighbourhood into its 2x2 HR pixels (PixelShuffle
    order): MATLAB's bicubic taps at 0.25 / 0.75 / 1.25 px, renormalised after dropping the 1.75 px tap."""
    taps = cubic(np.array([[0.75, 0.25, 1.25], [1.25, 0.25, 0.75]]))
    taps = torch.from_numpy(taps / taps.sum(axis=1, keepdims=True)).float()
    return torch.stack([torch.outer(taps[i], taps[j]) for i in range(2) for j in range(2)])


@torch.no_grad()
def bicubic_stage(conv: nn.Conv2d, channels: range) -> None:
    """Make the rows of a x2 PixelShuffle conv that produce ``channels`` a per-channel bicubic upscale."""
    kernels = _subpixel_kernels()
    for c in channels:
        conv.weight[c * 4 : c * 4 + 4].zero_()
        conv.weight[c * 4 : c * 4 + 4, c] = kernels
        conv.bias[c * 4 : c * 4 + 4].zero_()


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
    slope = model.conv_before_upsample[1].negative_slope
    first.weight[:n].zero_()
    first.bias[:n].zero_()
    before.weight[: 2 * n].zero_()
    before.bias[: 2 * n].zero_()
    for c in range(n):
        first.weight[c, c, 1, 1] = 1.0
        before.weight[c, c, 1, 1] = 1.0
        before.weight[n + c, c, 1, 1] = -1.0
    if isinstance(model.conv_after_body, nn.Conv2d):
        model.conv_after_body.weight.zero_()
        model.conv_after_body.bias.zero_()
    for stage in model.upsample:
        if isinstance(stage, nn.Conv2d):
            bicubic_stage(stage, range(2 * n))
    last = model.conv_last
    last.weight.zero_()
    last.bias.zero_()
    for c in range(n):
        last.weight[c, c, 1, 1] = 1.0 / (1.0 + slope)
        last.weight[c, n + c, 1, 1] = -1.0 / (1.0 + slope)


def load_matching(model: nn.Module, path: Path) -> list[str]:
    """Copy every tensor of ``path`` whose name and shape fit ``model`` (e.g. a x2 body into a x4 model).

    Returns the names that were left at their initial values.
    """
    source = read_state_dict(path)
    own = model.state_dict()
    fitting = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(k for k in own if k not in fitting)


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str], half: bool) -> None:
    """Write the state_dict as safetensors (float16 when ``half``), atomically (temp file + rename)."""
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        tensors[key] = value.half() if half and value.is_floating_point() else value
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _config(args: argparse.Namespace) -> HATConfig:
    return HATConfig(
        embed_dim=args.embed_dim,
        depths=tuple(args.depths),
        num_heads=tuple(args.heads),
        window_size=args.window,
        compress_ratio=args.compress,
        squeeze_factor=args.squeeze,
        mlp_ratio=args.mlp_ratio,
        upscale=args.scale,
        num_feat=args.num_feat,
    )


def _metadata(args: argparse.Namespace, config: HATConfig, files: list[Path], done: int) -> dict[str, str]:
    """Provenance stored in the safetensors header: config, training settings, data, steps completed."""
    return {
        "format": "pt",
        "hat_config": json.dumps(config.to_dict()),
        "training": json.dumps({k: str(v) for k, v in vars(args).items() if k != "out"}),
        "data": ",".join(p.name for p in files),
        "iterations_done": str(done),
    }


def train(args: argparse.Namespace) -> Path:
    """Run the training loop described by ``args`` and write the weights to ``args.out``."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    files = image_files(args.data)
    if not files:
        raise DataError(f"no images in {args.data}; run `python -m tools.data` first")
    config = _config(args)
    model = build_model(config)
    init_weights(model)
    if args.init:
        fresh = load_matching(model, args.init)
        for index, stage in enumerate(model.upsample):
            if f"upsample.{index}.weight" in fresh:
                bicubic_stage(stage, range(config.num_feat))
        print(f"initialised from {args.init}; new (bicubic): {', '.join(fresh) or 'nothing'}", flush=True)
    else:
        init_as_bicubic(model)
    model.train()
    sampler = PatchSampler(files, args.scale, args.patch, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    params = sum(p.numel() for p in model.parameters())
    print(f"{len(files)} training images, {params} parameters, config {json.dumps(config.to_dict())}", flush=True)

    start, running = time.monotonic(), 0.0
    for step in range(args.iters):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, args.iters, args.lr, args.warmup)
        lr_np, hr_np = sampler.batch(args.batch)
        loss = nn.functional.l1_loss(model(torch.from_numpy(lr_np)), torch.from_numpy(hr_np))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.iters:
            elapsed = time.monotonic() - start
            eta = elapsed / (step + 1) * (args.iters - step - 1)
            mean = running / ((step % args.log_every) + 1)
            print(
                f"iter {step + 1}/{args.iters}  L1 {mean:.5f}  lr {optimizer.param_groups[0]['lr']:.2e}  "
                f"{elapsed / 60:.1f} min, {eta / 60:.1f} min left",
                flush=True,
            )
            running = 0.0
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.iters:
            save_weights(model, args.out, _metadata(args, config, files, step + 1), args.half)
    model.eval()
    save_weights(model, args.out, _metadata(args, config, files, args.iters), args.half)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) after {(time.monotonic() - start) / 60:.1f} min")
    return args.out


def build_parser() -> argparse.ArgumentParser:
    """The command line; the defaults are the settings of the bundled models."""
    p = argparse.ArgumentParser(prog="python -m tools.train_tiny", description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, choices=(2, 3, 4), required=True)
    p.add_argument("--out", type=Path, required=True, help="where to write the .safetensors weights")
    p.add_argument("--data", type=Path, default=DEFAULT_DIR / "train", help="folder of HR training images")
    p.add_argument("--init", type=Path, help="start from these weights where names and shapes fit (x2 -> x4)")
    p.add_argument("--iters", type=int, default=3000, help="optimiser steps (the training budget)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=32, help="LR patch side in pixels")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (cosine decay)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (part of what makes a run reproducible)")
    p.add_argument("--embed-dim", type=int, default=48)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 2])
    p.add_argument("--heads", type=int, nargs="+", default=[3, 3])
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--compress", type=int, default=3)
    p.add_argument("--squeeze", type=int, default=12)
    p.add_argument("--mlp-ratio", type=float, default=2.0)
    p.add_argument("--num-feat", type=int, default=32)
    p.add_argument("--half", action="store_true", help="store float16 weights (half the file size)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument(
        "--save-every", type=int, default=0, help="also write the weights every N steps (0: only at the end)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tools.train_tiny``."""
    args = build_parser().parse_args(argv)
    if args.iters < 1 or args.batch < 1 or args.patch < args.window:
        print("error: --iters and --batch must be >= 1 and --patch at least the window size", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"error: {args.data} is not a folder; run `python -m tools.data` first", file=sys.stderr)
        return 2
    try:
        train(args)
    except (DataError, HATError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

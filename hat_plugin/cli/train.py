"""The ``train`` command of ``hat-upscale``: train or fine-tune HAT on a folder of images, resumably.

    hat-upscale train --data photos/ --val val/ --from HAT-S_SRx4 --out runs/mine --steps 20000
    hat-upscale train --resume runs/mine

Ctrl-C (or SIGTERM) stops after the current step with a checkpoint; a second Ctrl-C stops at once (the last
checkpoint stays). Exit codes: 0 done, 1 failed (bad data, weights, device), 2 usage error, 130 stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from hat_plugin.cli.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    Console,
    UsageError,
    add_talk_options,
    run_parsed,
)
from hat_plugin.cli.wording import worded
from hat_plugin.errors import Cancelled, HATError, OptionError, is_out_of_memory, out_of_memory_message

if TYPE_CHECKING:  # PyTorch loads only when training starts: --help stays fast
    from tqdm import tqdm

    from hat_plugin.training import Event, RunSettings

__all__ = ["build_parser", "run"]

_PRESETS = ("HAT-S", "HAT", "HAT-L", "tiny")
_RESUME_OPTIONS = {"help", "resume", "workers", "quiet", "verbose"}  # what does not change a run's result


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``hat-upscale train``; every default not shown is the official recipe's."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} train",
        description="Train or fine-tune HAT on your images with the official recipe (L1, Adam 0.9/0.99, EMA 0.999, "
        "learning rate halved at 50/80/90/95% of the steps, 64-pixel LR patches, flips and rotations, MATLAB "
        "bicubic degradation). The run folder gets checkpoints, log.jsonl, progress.png and model.safetensors "
        "(the EMA weights, usable with --weights).",
        epilog=f"examples:\n  {PROG} train --data photos/ --val val/ --from HAT-S_SRx4 --out runs/a --steps 20000\n"
        f"  {PROG} train --pretrain big/ --data photos/ --from HAT --scale 4 --out runs/b\n"
        f"  {PROG} train --resume runs/a",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to train")
    what.add_argument("--data", metavar="DIR", help="folder of HR training images (searched recursively)")
    what.add_argument("--val", metavar="DIR", help="folder of HR validation images (PSNR/SSIM on Y; best kept)")
    what.add_argument(
        "--from",
        dest="source",
        metavar="NAME|PATH|PRESET",
        help=f"weights to fine-tune (a model name or file; its params_ema) or a preset from scratch: "
        f"{', '.join(_PRESETS)}",
    )
    what.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscale factor (default: that of --from weights)")
    what.add_argument("--out", metavar="RUN_DIR", help="new folder for the run")
    what.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this folder exactly where it stopped")
    recipe = parser.add_argument_group("recipe (defaults: the official HAT option files)")
    recipe.add_argument("--steps", type=int, help="training steps (official: 500000 from scratch, 250000 fine-tuning)")
    recipe.add_argument(
        "--lr",
        type=float,
        help="learning rate (official: 2e-4 from scratch, 1e-5 fine-tuning, 1e-4 from another scale)",
    )
    recipe.add_argument(
        "--pretrain", metavar="DIR", help="first train on this (large) folder, then fine-tune on --data"
    )
    recipe.add_argument("--pretrain-steps", type=int, help="steps of the pre-training stage (official: 800000)")
    recipe.add_argument("--pretrain-lr", type=float, help="learning rate of the pre-training stage (official: 2e-4)")
    recipe.add_argument("--batch", type=int, default=4, help="patches per step (official: 4 per GPU)")
    recipe.add_argument("--patch", type=int, default=64, help="LR patch side, a multiple of the window (64)")
    recipe.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the weights (0.999)")
    recipe.add_argument("--seed", type=int, default=0, help="seed of the start and the data order (0)")
    recipe.add_argument(
        "--init", choices=("hat", "bicubic"), default="hat", help="fresh weights: official init, or start as bicubic"
    )
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto: bf16 autocast on GPUs that support it, fp16 with loss scaling on others, fp32 on CPU",
    )
    run.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's, i.e. all cores)")
    run.add_argument(
        "--workers",
        type=int,
        help="data loading processes (default: 6 on a GPU; on a CPU 0 when the images fit in memory, else up to 4)",
    )
    run.add_argument("--val-every", type=int, default=5000, help="validate every N steps (5000)")
    run.add_argument("--save-every", type=int, default=5000, help="checkpoint every N steps (5000)")
    run.add_argument("--log-every", type=int, default=100, help="log the loss every N steps (100)")
    run.add_argument("--cache-mb", type=int, default=2048, help="keep decoded images in memory up to this size")
    run.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deterministic algorithms (default: on for CPU, off for GPUs, where it is slower)",
    )
    add_talk_options(run)
    return parser


def _fetch(source: str, console: Console) -> Path:
    """The weights file of ``--from``, downloaded first (with a progress bar) when it is a model name."""
    from hat_plugin import weights
    from hat_plugin.progress import tqdm_progress

    bars: list[tqdm[None]] = []

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(console.bar(desc=source, unit="B", unit_scale=True, unit_divisor=1024))
        tqdm_progress(bars[0])(done, total)

    try:
        return weights.resolve(source, progress=progress)
    finally:
        for bar in bars:
            bar.close()


def _settings(args: argparse.Namespace, console: Console) -> RunSettings:
    """The new run's settings from the command line (the official recipe for what is not given)."""
    import torch

    from hat_plugin.config import detect_config
    from hat_plugin.device import resolve_device
    from hat_plugin.training import plan_run
    from hat_plugin.training.recipe import preset_config

    if not args.source or not args.data or not args.out:
        raise UsageError("a new run needs --data DIR, --from NAME|PATH|PRESET and --out RUN_DIR (or --resume)")
    scale = args.scale
    preset = preset_config(args.source, 2) is not None
    if preset and scale is None:
        raise UsageError(f"--from {args.source} is a preset: give --scale 2, 3 or 4")
    if not preset:
        from hat_plugin import read_state_dict

        path = _fetch(args.source, console)
        scale = scale or detect_config(read_state_dict(path)).upscale
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    precision = args.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if gpu else "fp32"
    return plan_run(
        args.source,
        scale,
        args.data,
        pretrain=args.pretrain,
        steps=args.steps,
        lr=args.lr,
        pretrain_steps=args.pretrain_steps,
        pretrain_lr=args.pretrain_lr,
        val=args.val,
        batch=args.batch,
        patch=args.patch,
        ema_decay=args.ema_decay,
        seed=args.seed,
        init=args.init,
        device=str(device),
        precision=precision,
        threads=args.threads or torch.get_num_threads(),
        val_every=args.val_every,
        save_every=args.save_every,
        log_every=args.log_every,
        cache_mb=args.cache_mb,
        channels_last=gpu,
        deterministic=args.deterministic if args.deterministic is not None else not gpu,
    )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, console: Console) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: finish the step, checkpoint, stop. Second Ctrl-C: stop at once."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        console.info("stopping after this step with a checkpoint (Ctrl-C again to stop at once)")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Display:
    """Shows the trainer's events: a bar with loss, learning rate, steps/s and ETA; messages above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: tqdm[None] | None = None

    def __call__(self, event: Event) -> None:
        if event.kind == "warning":
            self.console.warning(event.message)
        elif event.kind in ("info", "val"):
            self.console.info(event.message)
        elif event.kind == "checkpoint":
            self.console.detail(event.message)
        elif event.kind in ("step", "train"):
            self._progress(event)

    def _progress(self, event: Event) -> None:
        if self.bar is None:
            self.bar = self.console.bar(total=event.total, initial=event.step, unit="step", desc="training")
        self.bar.update(event.step - self.bar.n)
        if event.kind != "train":
            return
        values = event.values
        self.bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
        if self.bar.disable:  # no terminal: a plain line every --log-every steps
            rate = values["steps_per_s"]
            eta = (event.total - event.step) / rate if rate > 0 else float("inf")
            self.console.info(
                f"step {event.step}/{event.total}  loss {values['loss']:.5f}  lr {values['lr']:.2e}  "
                f"{rate:.2f} steps/s  ETA {_duration(eta)}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run(argv: list[str]) -> int:
    """Entry point of ``hat-upscale train``; returns the exit code."""
    parser = build_parser()
    interrupted = "interrupted; the run goes on from its last checkpoint with --resume RUN_DIR"
    return run_parsed(
        parser, argv, lambda args, console: _train(parser, args, console), interrupted=interrupted, name=f"{PROG} train"
    )


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace, console: Console) -> int:
    if args.resume:
        given = [
            action.option_strings[-1]
            for action in parser._actions
            if action.dest not in _RESUME_OPTIONS and getattr(args, action.dest) != action.default
        ]
        if given:
            raise UsageError(
                f"--resume continues a run with the settings in its run.json; {', '.join(given)} cannot change "
                "them (only --workers, --quiet and --verbose go with --resume)"
            )
    if args.workers is not None and args.workers < 0:
        raise UsageError("--workers must be 0 or more")
    display = _Display(console)
    try:
        from hat_plugin.runtime import configure_process
        from hat_plugin.training import Trainer, create_run

        configure_process()
        if args.resume:
            run_dir = Path(args.resume)
        else:
            run_dir = create_run(args.out, _settings(args, console))
            console.info(f"run folder: {run_dir}")
        stop = threading.Event()
        with _stop_on_signals(stop, console):
            result = Trainer(run_dir, workers=args.workers, on_event=display, cancel=stop).run()
    except OptionError as exc:
        display.close()
        raise UsageError(worded(exc)) from None
    except Cancelled as exc:
        display.close()
        console.error(worded(exc))
        return EXIT_INTERRUPTED
    except HATError as exc:
        display.close()
        console.error(worded(exc), exc)
        return EXIT_FAILED
    except (RuntimeError, MemoryError) as exc:
        display.close()
        if not is_out_of_memory(exc):
            raise
        console.error(out_of_memory_message(args.device, what="training; use a smaller --batch or --patch"), exc)
        return EXIT_FAILED
    display.close()
    console.info(f"EMA weights: {result}\nuse them: {PROG} IMAGE --weights {result}")
    return EXIT_OK

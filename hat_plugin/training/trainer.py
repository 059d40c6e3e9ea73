"""The training loop: stages of L1 training with Adam, an EMA of the weights, validation, checkpoints and resume.

A run lives in one folder::

    run.json            the settings (written once; ``--resume`` reads them)
    checkpoint.pt       the full state, replaced atomically every ``save_every`` steps, at each stage's end and on
                        cancel (see ``state.py``); a run killed at any moment resumes from it bit for bit
    model.safetensors   the EMA weights as of the last checkpoint (the result once the run is complete)
    best.safetensors    the EMA weights with the best validation PSNR-Y so far (with ``val``)
    log.jsonl           training loss, learning rate, speed and validation scores (see ``logbook.py``)
    progress.png        loss and PSNR-Y curves (see ``plot.py``)

Every number of the loop follows BasicSR's ``SRModel`` as configured by the official HAT option files: the learning
rate is set per step from the milestones, the L1 loss is averaged over the batch, the EMA is updated after every
optimiser step, and a stage that follows another starts from that stage's EMA weights with a fresh optimiser.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.data import DataLoader

from ..arch import HAT
from ..checkpoint import build_model
from ..config import HATConfig
from ..device import resolve_device
from ..engine import Upscaler
from ..errors import Cancelled, TrainingError
from ..files import atomic_write, file_key
from ..options import EngineOptions
from ..progress import CancelCheck, raise_if_cancelled
from ..rgb_mean import METADATA_KEY, describe_rgb_mean
from .folders import scan_folder
from .logbook import Logbook
from .patches import Batch, PatchBatches, TrainingImages
from .plot import write_progress
from .recipe import ADAM_BETAS, lr_at
from .settings import RUN_FILE, RunSettings, StageSettings, read_settings, write_settings
from .start import starting_model
from .state import capture_rng, load_state, restore_rng, save_state
from .validation import Score, ValidationSet

__all__ = ["CHECKPOINT", "Event", "EventFn", "Trainer", "create_run", "save_weights"]

CHECKPOINT = "checkpoint.pt"
MODEL, BEST, LOG, PLOT = "model.safetensors", "best.safetensors", "log.jsonl", "progress.png"


@dataclass(frozen=True)
class Event:
    """Something a front end may show. ``kind``: ``step`` (after every step), ``train`` (every ``log_every`` steps,
    ``values`` loss, lr and steps_per_s), ``val`` (psnr, ssim), ``checkpoint``, ``info`` or ``warning``."""

    kind: str
    step: int
    total: int
    message: str = ""
    values: Mapping[str, float] = field(default_factory=dict)


EventFn = Callable[[Event], None]


def create_run(run_dir: str | os.PathLike[str], settings: RunSettings) -> Path:
    """Make the run folder and write its settings; refuses a folder that already holds a run or other files."""
    root = Path(run_dir).expanduser()
    if (root / RUN_FILE).exists():
        raise TrainingError(f"{root} already holds a training run: continue it with {{resume}} {root}", option="resume")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise TrainingError(f"{root} exists and is not an empty folder: choose a new folder for the run")
    _refuse_inside_data(root, settings)
    write_settings(root, settings)
    return root


def _refuse_inside_data(root: Path, settings: RunSettings) -> None:
    """A run folder must not be a training or validation folder or lie inside one (compared as files, whatever
    path reaches them): its plot and weights would be written among the images the run reads."""
    folders = [stage.data for stage in settings.stages] + ([settings.val] if settings.val else [])
    keys = {file_key(folder): folder for folder in folders}
    for place in (root.absolute(), *root.absolute().parents):
        if file_key(place) in keys:
            raise TrainingError(
                f"{root} is inside the image folder {keys[file_key(place)]} of this run: its outputs would be "
                "mixed with the images it reads; choose a run folder elsewhere"
            )


def save_weights(path: Path, model: nn.Module, metadata: Mapping[str, str]) -> None:
    """The network's state_dict as float32 safetensors with ``metadata`` in the header, written atomically."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, safetensors_bytes(tensors, metadata=dict(metadata)))


def _ignore_sigint(_worker: int) -> None:
    """Data workers leave Ctrl-C to the main process, which saves a checkpoint before stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _process_settings(settings: RunSettings, device: torch.device) -> Iterator[None]:
    """Thread count and deterministic algorithms for the run, restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(settings.threads)
    if settings.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


class Trainer:
    """Runs (or continues) the training run in ``run_dir``.

    ``workers``: data loading processes (0 loads in this process); the result does not depend on it. None picks
    per stage: 6 on a GPU (the official ``num_worker_per_gpu``); on a CPU, which the model needs, none when the
    images are held in memory and up to 4 (leaving a core) when they are decoded from disk per patch.
    ``on_event``: called with progress, scores and warnings. ``cancel``: checked between steps; when set, a
    checkpoint is written and ``Cancelled`` raised (the run can be resumed).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        workers: int | None = None,
        on_event: EventFn | None = None,
        cancel: CancelCheck = None,
    ) -> None:
        self.dir = Path(run_dir).expanduser()
        self.settings = read_settings(self.dir)
        self.workers = workers
        self.on_event = on_event
        self.cancel = cancel
        self.device = resolve_device(self.settings.device)
        self.log = Logbook()
        self.best: dict[str, float] = {}
        self.step = 0
        self.stage = 0
        self.stage_step = 0
        self.done = False
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._clock = (time.monotonic(), 0)
        self._warned: set[str] = set()
        self._stage_files: list[str] | None = None
        self._scaler_state: dict[str, Any] | None = None
        self._stage_workers = 0

    # ---- events ----------------------------------------------------------------------------------------------

    def _emit(self, kind: str, message: str = "", **values: float) -> None:
        if self.on_event is not None:
            self.on_event(Event(kind, self.step, self.settings.total_steps, message, values))

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._emit("warning", message)

    # ---- model, optimiser, state ------------------------------------------------------------------------------

    def _config(self) -> HATConfig:
        config: HATConfig = self.model.config
        return config

    def _optimizer(self, stage: StageSettings) -> torch.optim.Adam:
        # foreach: one multi-tensor update per step. PyTorch picks it by itself only on GPUs; on a CPU the per-tensor
        # loop cost 40% as much as the backward pass of the tiny model (profiled).
        return torch.optim.Adam(self.model.parameters(), lr=stage.lr, betas=ADAM_BETAS, weight_decay=0.0, foreach=True)

    def _amp(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        precision = self.settings.precision
        if precision == "fp32":
            return None, None
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        scaler = torch.amp.GradScaler(self.device.type) if dtype == torch.float16 else None
        return dtype, scaler

    def _fresh(self) -> None:
        """Start the run: seed, build the starting network, copy it into the EMA."""
        torch.manual_seed(self.settings.seed)
        start = starting_model(self.settings.source, self.settings.scale, init=self.settings.init)
        kind = start.kind.value
        if start.fresh and kind != "scratch":
            self._emit("info", f"from {start.source}: new (bicubic) layers {', '.join(start.fresh)}")
        self._place(start.model)
        self.optimizer = self._optimizer(self.settings.stages[0])

    def _place(self, model: HAT) -> None:
        memory = torch.channels_last if self.settings.channels_last else torch.contiguous_format
        self.model = model.to(self.device).to(memory_format=memory).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.validator: Upscaler | None = None

    def _resume(self, state: dict[str, Any]) -> None:
        config = HATConfig.from_dict(json.loads(state["config"]))
        model = build_model(config)
        model.load_state_dict(state["model"])
        self._place(model)
        self.ema.load_state_dict(state["ema"])
        self.stage, self.stage_step, self.step = state["stage"], state["stage_step"], state["step"]
        self.done = bool(state["done"])
        self.log = Logbook(state["log"])
        self.best = dict(state["best"])
        stage = self.settings.stages[min(self.stage, len(self.settings.stages) - 1)]
        self.optimizer = self._optimizer(stage)
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self._scaler_state = state.get("scaler")
        self._stage_files = state.get("files")
        restore_rng(state["rng"])

    def _checkpoint(self, scaler: torch.amp.GradScaler | None, files: list[str]) -> None:
        state = {
            "config": json.dumps(self._config().to_dict()),
            "stage": self.stage,
            "stage_step": self.stage_step,
            "step": self.step,
            "done": self.done,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.stage_step else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": capture_rng(),
            "files": files if self.stage_step else None,
            "log": self.log.records,
            "best": self.best,
        }
        save_state(self.dir / CHECKPOINT, state)
        save_weights(self.dir / MODEL, self.ema, self._metadata())
        self._write_log()
        self._emit("checkpoint", f"checkpoint at step {self.step}")

    def _metadata(self, score: Score | None = None) -> dict[str, str]:
        """Provenance in the safetensors header: config, settings, steps done, validation score."""
        meta = {
            "format": "pt",
            "hat_config": json.dumps(self._config().to_dict()),
            "training": json.dumps(self.settings.to_dict()),
            "steps_done": str(self.step),
        }
        if self._config().rgb_mean is not None:
            meta[METADATA_KEY] = describe_rgb_mean(self._config().input_mean)
        if score is not None:
            meta["val_psnr_y"], meta["val_ssim_y"] = f"{score.psnr:.4f}", f"{score.ssim:.5f}"
        return meta

    def _write_log(self) -> None:
        self.log.write(self.dir / LOG)
        write_progress(
            self.dir / PLOT, self.log.series("train", "loss"), self.log.series("val", "psnr"), self.settings.total_steps
        )

    # ---- validation -------------------------------------------------------------------------------------------

    def _validate(self, val: ValidationSet) -> None:
        if self.validator is None:
            self.validator = Upscaler(
                self.ema, EngineOptions.from_environment(device=str(self.device), precision="fp32")
            )
        score = val.score(self.validator)
        best = score.psnr > self.best.get("psnr", float("-inf"))
        if best:
            self.best = {"psnr": score.psnr, "ssim": score.ssim, "step": float(self.step)}
            save_weights(self.dir / BEST, self.ema, self._metadata(score))
        self.log.add("val", self.step, psnr=score.psnr, ssim=score.ssim)
        mark = " (best)" if best else ""
        self._emit(
            "val",
            f"step {self.step}: validation PSNR-Y {score.psnr:.3f} dB, SSIM {score.ssim:.4f}{mark}",
            psnr=score.psnr,
            ssim=score.ssim,
        )

    # ---- the loop ---------------------------------------------------------------------------------------------

    def _stage_data(self, stage: StageSettings, index: int) -> tuple[PatchBatches, list[str]]:
        s = self.settings
        scan = scan_folder(stage.data, s.patch * s.scale)
        for path, reason in scan.corrupt:
            self._emit("warning", f"skipped unreadable {path}: {reason}")
        self._emit("info", scan.summary(f"{stage.name} data"))
        images = TrainingImages(scan.files, scan.sizes, s.scale, s.cache_mb << 20)
        for path, reason in images.failed:
            self._emit("warning", f"skipped unreadable {path}: {reason}")
        files = [p.relative_to(scan.folder).as_posix() for p in scan.files]
        if self._stage_files is not None and self._stage_files != files:
            self._emit("warning", f"{stage.data} changed since the checkpoint: the resumed run is not reproducible")
        self._stage_files = None
        mode = "held in memory" if images.cached else "decoded from disk per patch"
        self._stage_workers = self.workers if self.workers is not None else self._auto_workers(images.cached)
        self._emit("info", f"{stage.name} images {mode}, {self._stage_workers} data workers")
        return PatchBatches(images, patch=s.patch, batch=s.batch, seed=s.seed, stage=index), files

    def _batches(self, data: PatchBatches, start: int, steps: int) -> Iterator[Batch]:
        """The batches of steps ``start`` to ``steps - 1``, made by the data workers if there are any."""
        with warnings.catch_warnings():
            # Python 3.12 warns on every fork of a threaded process; PyTorch's DataLoader forks its workers by
            # design (they touch no locks of the parent's threads), and the alternative (spawn) would copy the
            # images held in memory into every worker.
            warnings.filterwarnings(
                "ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning
            )
            batches = iter(self._loader(data, start, steps))
        yield from batches

    def _auto_workers(self, cached: bool) -> int:
        cores = os.cpu_count() or 1
        if self.device.type == "cuda":
            return min(6, max(1, cores - 1))
        return 0 if cached else max(1, min(4, cores - 1))

    def _loader(self, data: PatchBatches, start: int, steps: int) -> DataLoader[Batch]:
        workers = self._stage_workers
        return DataLoader(
            data,
            batch_size=None,
            sampler=range(start, steps),
            num_workers=workers,
            worker_init_fn=_ignore_sigint if workers else None,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.settings.seed),
            prefetch_factor=4 if workers else None,
        )

    def _train_step(
        self, batch: Batch, stage: StageSettings, amp: torch.dtype | None, scaler: torch.amp.GradScaler | None
    ) -> None:
        lr = lr_at(self.stage_step, stage.steps, stage.lr, stage.milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        memory = torch.channels_last if self.settings.channels_last else torch.contiguous_format
        lr_img = batch.lr.to(self.device, non_blocking=True).float().div_(255).contiguous(memory_format=memory)
        hr_img = batch.hr.to(self.device, non_blocking=True).float().div_(255)
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            output = self.model(lr_img)
        loss = nn.functional.l1_loss(output.float(), hr_img)
        self.optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(self.optimizer)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        self._update_ema()
        detached = loss.detach()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._loss_count += 1
        self.stage_step += 1
        self.step += 1
        for path in batch.failed:
            self._warn_once(f"skipped {path}: it could not be decoded")

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.settings.ema_decay
        ema: list[torch.Tensor] = list(self.ema.parameters())
        live: list[torch.Tensor] = [p.detach() for p in self.model.parameters()]
        torch._foreach_mul_(ema, decay)
        torch._foreach_add_(ema, live, alpha=1.0 - decay)

    def _log_train(self, stage: StageSettings) -> None:
        now = time.monotonic()
        rate = (self.step - self._clock[1]) / max(now - self._clock[0], 1e-9)
        self._clock = (now, self.step)
        loss = float(self._loss_sum.item()) / self._loss_count if self._loss_sum is not None else float("nan")
        self._loss_sum, self._loss_count = None, 0
        lr = self.optimizer.param_groups[0]["lr"]
        self.log.add("train", self.step, loss=loss, lr=lr, steps_per_s=rate, stage=stage.name)
        self._emit("train", "", loss=loss, lr=lr, steps_per_s=rate)

    def run(self) -> Path:
        """Train until every stage is done (continuing from the checkpoint if there is one); returns the path of
        the EMA weights. Raises ``Cancelled`` (after a checkpoint) when ``cancel`` is set."""
        s = self.settings
        with _process_settings(s, self.device):
            resumed = (self.dir / CHECKPOINT).exists()
            if resumed:
                self._resume(load_state(self.dir / CHECKPOINT))
                self._emit("info", f"resuming at step {self.step} of {s.total_steps}")
            else:
                self._fresh()
            if self.done:
                self._emit("info", "the run is already complete")
                return self.dir / MODEL
            val = ValidationSet(s.val, s.scale) if s.val else None
            if val is not None:
                self._emit("info", val.scan.summary("validation"))
                if self.step == 0 and not self.log.series("val", "psnr"):
                    self._validate(val)
            self._clock = (time.monotonic(), self.step)
            while self.stage < len(s.stages):
                self._run_stage(val)
            self._emit("info", f"done: {self.dir / MODEL}")
            return self.dir / MODEL

    def _run_stage(self, val: ValidationSet | None) -> None:
        s = self.settings
        stage = s.stages[self.stage]
        data, files = self._stage_data(stage, self.stage)
        if self.stage_step == 0:
            if self.stage > 0:  # the paper's fine-tuning after pre-training starts from the pre-trained EMA
                self.model.load_state_dict(self.ema.state_dict())
            self.optimizer = self._optimizer(stage)
            self._emit("info", f"stage {stage.name}: {stage.steps} steps at learning rate {stage.lr:g}")
        amp, scaler = self._amp()
        if scaler is not None and self._scaler_state:
            scaler.load_state_dict(self._scaler_state)
        self._scaler_state = None
        try:
            for batch in self._batches(data, self.stage_step, stage.steps):
                raise_if_cancelled(self.cancel, "training")
                self._train_step(batch, stage, amp, scaler)
                self._emit("step")
                end = self.stage_step == stage.steps
                if self.step % s.log_every == 0 or end:
                    self._log_train(stage)
                if val is not None and (self.step % s.val_every == 0 or end):
                    self._validate(val)
                if end:
                    self.stage += 1
                    self.stage_step = 0
                    self.done = self.stage == len(s.stages)
                if self.step % s.save_every == 0 or end:
                    self._checkpoint(scaler, files)
                raise_if_cancelled(self.cancel, "training")
        except Cancelled:
            self._checkpoint(scaler, files)
            raise Cancelled(
                f"training stopped at step {self.step}; continue with {{resume}} {self.dir}", option="resume"
            ) from None

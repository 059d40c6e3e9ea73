"""What a training run does, fixed when it starts and kept in ``RUN_DIR/run.json`` so ``--resume`` needs nothing else.

``plan_run`` fills every setting the caller leaves out from the official recipe (``recipe.py``), according to what
each stage starts from: a preset from scratch, trained weights of the same scale, or of another scale.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..config import HATConfig, detect_config
from ..errors import CheckpointError, OptionError, TrainingError
from ..files import atomic_write
from .folders import scan_folder
from .recipe import BATCH, EMA_DECAY, LR_PATCH, SEED, VAL_EVERY, Kind, preset_config, recipe_for
from .validation import min_side

__all__ = ["RUN_FILE", "RunSettings", "StageSettings", "plan_run", "read_settings", "write_settings"]

RUN_FILE = "run.json"
_VERSION = 1


@dataclass(frozen=True)
class StageSettings:
    """One stage: its data folder, length, peak learning rate and milestones (fractions of ``steps``)."""

    name: str
    data: str
    kind: str
    steps: int
    lr: float
    milestones: tuple[float, ...]


@dataclass(frozen=True)
class RunSettings:
    """Every setting that shapes the result. Changing one of these would change the weights; how many data
    workers load the patches does not, so that is chosen per invocation instead."""

    source: str
    """``--from``: a preset (trained from scratch) or a weights file / model name (fine-tuned)."""
    scale: int
    stages: tuple[StageSettings, ...]
    val: str | None = None
    batch: int = BATCH
    patch: int = LR_PATCH
    ema_decay: float = EMA_DECAY
    seed: int = SEED
    init: str = "hat"
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    val_every: int = VAL_EVERY
    save_every: int = VAL_EVERY
    log_every: int = 100
    cache_mb: int = 2048
    channels_last: bool = False
    deterministic: bool = True

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"version": _VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        if data.get("version") != _VERSION:
            raise TrainingError(f"run settings of version {data.get('version')!r}; this program reads {_VERSION}")
        values = {k: v for k, v in data.items() if k != "version"}
        stages = tuple(StageSettings(**{**s, "milestones": tuple(s["milestones"])}) for s in values.pop("stages", []))
        try:
            return cls(**values, stages=stages)
        except TypeError as exc:
            raise TrainingError(f"run settings do not fit this program: {exc}") from None


def write_settings(run_dir: Path, settings: RunSettings) -> None:
    """Write ``run.json`` atomically; refuses to replace the settings of an existing run."""
    path = run_dir / RUN_FILE
    text = json.dumps(settings.to_dict(), indent=1) + "\n"
    atomic_write(path, text.encode(), overwrite=False)


def read_settings(run_dir: Path) -> RunSettings:
    """The settings of the run in ``run_dir``; ``TrainingError`` when it is not a run folder."""
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(
            f"{run_dir} is not a training run folder (no {RUN_FILE}); start one with {{out}}", option="out"
        ) from None
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path}: cannot read the run settings: {exc}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: not run settings")
    return RunSettings.from_dict(data)


def _positive(option: str, value: int) -> int:
    if value < 1:
        raise OptionError(f"{{{option}}} must be 1 or more, not {value}", option=option)
    return value


def _stage(name: str, data: str, kind: Kind, steps: int | None, lr: float | None) -> StageSettings:
    official = recipe_for(kind)
    if lr is not None and not lr > 0:
        raise OptionError(f"the learning rate must be positive, not {lr}")
    return StageSettings(
        name=name,
        data=str(data),
        kind=kind.value,
        steps=_positive("steps", steps if steps is not None else official.steps),
        lr=lr if lr is not None else official.lr,
        milestones=official.milestones,
    )


def _source_config(source: str, scale: int) -> HATConfig:
    """The architecture of a preset at ``scale``, or of a weights file / model name as stored."""
    config = preset_config(source, scale)
    if config is not None:
        return config
    from .. import weights
    from ..checkpoint import read_state_dict

    path = weights.resolve(source)
    state_dict = read_state_dict(path)  # its errors name the file
    try:
        return detect_config(state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def plan_run(
    source: str,
    scale: int,
    data: str | os.PathLike[str],
    *,
    pretrain: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    lr: float | None = None,
    pretrain_steps: int | None = None,
    pretrain_lr: float | None = None,
    check_data: bool = True,
    **options: Any,
) -> RunSettings:
    """The settings of a new run, with the official recipe for everything not given.

    One stage on ``data``; with ``pretrain``, first a stage on that (large) folder, then the second stage
    fine-tunes the first one's EMA weights on ``data`` (the paper's same-task pre-training). ``options`` are
    the other ``RunSettings`` fields (``val``, ``batch``, ``patch``, ``ema_decay``, ...). With ``check_data``
    the folders are scanned now, so a missing or useless one is a ``DataError`` before anything is written.
    """
    if scale not in (2, 3, 4):
        raise OptionError(f"scale must be 2, 3 or 4, not {scale}")
    scratch = preset_config(source, scale) is not None
    found = _source_config(source, scale)
    first = Kind.SCRATCH if scratch else Kind.FINETUNE if found.upscale == scale else Kind.NEW_SCALE
    stages: list[StageSettings] = []
    if pretrain is not None:
        stages.append(
            _stage("pretrain", str(pretrain), Kind.PRETRAIN if scratch else first, pretrain_steps, pretrain_lr)
        )
        stages.append(_stage("train", str(data), Kind.FINETUNE, steps, lr))
    else:
        stages.append(_stage("train", str(data), first, steps, lr))
    settings = RunSettings(source=source, scale=scale, stages=tuple(stages), **options)
    for name in ("batch", "patch", "threads", "val_every", "save_every", "log_every"):
        _positive(name, getattr(settings, name))
    if not 0.0 <= settings.ema_decay < 1.0:
        raise OptionError(f"{{ema_decay}} must be in [0, 1), not {settings.ema_decay}", option="ema_decay")
    window = found.window_size
    if settings.patch % window:
        raise OptionError(
            f"{{patch}} {settings.patch} must be a multiple of the model's window size ({window})", option="patch"
        )
    if settings.cache_mb < 0:
        raise OptionError(f"{{cache_mb}} must be 0 or more, not {settings.cache_mb}", option="cache_mb")
    if check_data:
        for stage in settings.stages:
            scan_folder(stage.data, settings.patch * scale, f"{stage.name} data")
        if settings.val is not None:
            scan_folder(settings.val, min_side(scale), "validation")
    return replace(settings, val=str(settings.val) if settings.val is not None else None)

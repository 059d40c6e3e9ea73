"""Training and fine-tuning HAT on a folder of images (``hat-upscale train``), with the official recipe.

Modules, one job each: ``recipe`` (the official numbers and their sources), ``settings`` (a run's settings,
``run.json``), ``start`` (the starting network: preset or trained weights), ``folders`` (which files are usable),
``degrade`` (MATLAB bicubic LR), ``patches`` (the batch of each step, deterministic), ``validation`` (PSNR/SSIM-Y
scoring), ``state`` (checkpoint file), ``logbook`` / ``plot`` (log and PNG), ``trainer`` (the loop).

    from hat_plugin.training import Trainer, create_run, plan_run
    settings = plan_run("tiny", 2, "photos/", val="val/", steps=2000, threads=4)
    create_run("runs/x2", settings)
    Trainer("runs/x2", workers=1).run()       # -> runs/x2/model.safetensors (EMA weights)
"""

from __future__ import annotations

from .recipe import TRAIN_PRESETS, Kind
from .settings import RunSettings, StageSettings, plan_run, read_settings
from .trainer import Event, Trainer, create_run

__all__ = [
    "TRAIN_PRESETS",
    "Event",
    "Kind",
    "RunSettings",
    "StageSettings",
    "Trainer",
    "create_run",
    "plan_run",
    "read_settings",
]

"""One way to run units of work (video chunks, groups of images) with an engine: here, or on a Ray cluster.

    from hat_plugin.workers import Model, RayRunner, run_units

``units`` (the unit, the work, ``run_units``, the local runner, the progress figure), ``ray_runner`` (one Ray task
per unit), ``board`` (the cluster's progress actor). Names are imported on first use, so neither Ray nor PyTorch
loads with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .ray_runner import RayRunner, WorkerStatus
    from .units import Events, Hooks, LocalRunner, Model, Progress, Runner, Unit, Work, run_units

_LAZY = {
    "RayRunner": "ray_runner",
    "WorkerStatus": "ray_runner",
    "Events": "units",
    "Hooks": "units",
    "LocalRunner": "units",
    "Model": "units",
    "Progress": "units",
    "Runner": "units",
    "Unit": "units",
    "Work": "units",
    "run_units": "units",
}

__all__ = [
    "Events",
    "Hooks",
    "LocalRunner",
    "Model",
    "Progress",
    "RayRunner",
    "Runner",
    "Unit",
    "Work",
    "WorkerStatus",
    "run_units",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

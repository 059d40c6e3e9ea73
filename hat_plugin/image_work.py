"""A batch of image files as units of work (``hat_plugin.workers``): upscaled here, or in groups as Ray tasks.

    upscale_images(plan.todo, ImageWork(format="png"), runner, model, on_outcome=..., progress=...)

The caller's plan (``batch.plan_outputs``: skips, refusals, name clashes) decides which files are made and where;
this module only makes them, so a cluster run writes exactly the files a local run writes. Each output is written
atomically by whoever upscales it, and a failing image is one failed outcome: the rest of its group goes on.
Locally each image is its own unit (so each is reported as it is written) and an ``ImageWatch`` hears each step
of it (a front end's per-image display: its tile progress, its messages); on a cluster a unit is a group of images,
few tasks for a large archive and one engine load per worker.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .batch import Planned
from .errors import Cancelled, describe_exception
from .files import remove_temporaries
from .images import read_image, write_image
from .limits import default_max_pixels
from .progress import CancelCheck, ProgressFn, raise_if_cancelled
from .workers.units import Events, LocalRunner, Model, Runner, run_units

if TYPE_CHECKING:
    from .engine import Upscaler

__all__ = ["ImageGroup", "ImageOutcome", "ImageWatch", "ImageWork", "group_images", "upscale_images"]

IMAGES_PER_TASK = 16
"""Most images in one cluster task."""
TASKS_WANTED = 256
"""Fewer images per task while a run would have fewer tasks than this (so every worker gets some)."""

Outcomes = tuple["ImageOutcome", ...]
"""A group's result: one outcome per image, in the group's order."""


@dataclass(frozen=True)
class ImageGroup:
    """Images upscaled together by one task: ``(source, output)`` pairs from the plan."""

    number: int
    images: tuple[tuple[Path, Path], ...]

    @property
    def key(self) -> int:
        return self.number

    @property
    def size(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class ImageOutcome:
    """What became of one image: written (``size`` is the output's width and height) or ``error``."""

    source: Path
    output: Path
    size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: Exception | None = None
    earlier: bool = False
    """The output was written by an earlier attempt of its task (a cluster task run again after its worker died)."""


class ImageWatch:
    """Hears each image of a local run as it is made (``ImageWork.watch``); a front end overrides what it shows."""

    def image(self, source: Path, output: Path) -> contextlib.AbstractContextManager[None]:
        """Around all of one image: read, upscale, write. What it raises on entering fails the image with that
        error (a check of the front end's own); a cancel passes through it as ``Cancelled``."""
        return contextlib.nullcontext()

    def upscaling(self, source: Path, output: Path) -> contextlib.AbstractContextManager[ProgressFn | None]:
        """Around the upscale of the image once it is read: the engine's tile progress callback, or None."""
        return contextlib.nullcontext()


@dataclass(frozen=True)
class ImageWork:
    """How each image is read and written: as in ``images.read_image`` and ``images.write_image``.

    ``max_pixels`` None means what the upscaling machine's free memory allows at the model's scale. With
    ``earlier_outputs`` (cluster runs, overwrite off) an output that exists when its image comes up was written by
    an earlier attempt of the same task and is kept. ``watch`` hears each image's steps (local runs).
    """

    format: str | None = None
    quality: int | None = None
    overwrite: bool = False
    max_pixels: int | None = None
    earlier_outputs: bool = False
    watch: ImageWatch | None = None

    def run(self, engine: Upscaler, units: Sequence[ImageGroup], events: Events[ImageGroup, Outcomes]) -> None:
        """Upscale each group's images in order; one outcome per image."""
        max_pixels = self.max_pixels if self.max_pixels is not None else default_max_pixels(engine.scale)
        for group in units:
            outcomes = []
            for number, (source, output) in enumerate(group.images, 1):
                raise_if_cancelled(events.cancel, "upscaling")
                outcomes.append(self._one(engine, source, output, max_pixels, events.cancel))
                events.report(group, number)
            events.done(group, tuple(outcomes))

    def _one(self, engine: Upscaler, source: Path, output: Path, max_pixels: int, cancel: CancelCheck) -> ImageOutcome:
        """Read, upscale and write one image; any failure but a cancel is its outcome."""
        if self.earlier_outputs and not self.overwrite and output.exists():
            return ImageOutcome(source, output, earlier=True)
        started = time.perf_counter()
        watch = self.watch or ImageWatch()
        try:
            with watch.image(source, output):
                image = read_image(source, max_pixels=max_pixels)
                with watch.upscaling(source, output) as progress:
                    pixels = engine.upscale(image.pixels, progress=progress, cancel=cancel)
                raise_if_cancelled(cancel, "writing")  # cancelled after the last tile: discarded, as within one
                write_image(
                    output,
                    replace(image, pixels=pixels),
                    format=self.format,
                    quality=self.quality,
                    overwrite=self.overwrite,
                    inputs=(source,),
                )
        except Cancelled:
            raise
        except Exception as exc:
            return ImageOutcome(source, output, error=_portable(exc))
        height, width = pixels.shape[:2]
        return ImageOutcome(source, output, (width, height), time.perf_counter() - started)


def _portable(exc: Exception) -> Exception:
    """``exc``, or its description in a ``RuntimeError`` when it cannot travel back from a worker (pickling)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(describe_exception(exc))
    return exc


def group_images(todo: Sequence[Planned], per_group: int) -> list[ImageGroup]:
    """The planned images in order, ``per_group`` to a group."""
    pairs = [(item.input.source, item.output) for item in todo]
    return [
        ImageGroup(number, tuple(pairs[start : start + per_group]))
        for number, start in enumerate(range(0, len(pairs), per_group))
    ]


def upscale_images(
    todo: Sequence[Planned],
    work: ImageWork,
    runner: Runner | None,
    model: Model,
    *,
    on_outcome: Callable[[ImageOutcome], None],
    on_lost: Callable[[Outcomes], None] | None = None,
    progress: Callable[[int], None] | None = None,
    images_per_task: int | None = None,
    cancel: CancelCheck = None,
) -> None:
    """Upscale the planned images with ``runner`` (here when None), calling ``on_outcome`` for each image as its
    unit finishes and ``progress(images done)``. On a cluster the images go ``images_per_task`` to a task
    (default: up to ``IMAGES_PER_TASK``, fewer while that would make under ``TASKS_WANTED`` tasks); a group lost
    on the cluster (its retries spent, or its task failed) is an error outcome for each of its images not written,
    handed to ``on_lost`` together (so a front end can say it once for the group), else one by one to
    ``on_outcome``."""
    local = runner is None or isinstance(runner, LocalRunner)
    if local:
        per_group = 1
    else:
        per_group = images_per_task or max(1, min(IMAGES_PER_TASK, len(todo) // TASKS_WANTED))
        work = replace(work, earlier_outputs=True, watch=None)

    def done(_group: ImageGroup, outcomes: tuple[ImageOutcome, ...]) -> None:
        for outcome in outcomes:
            on_outcome(outcome)

    def failed(group: ImageGroup, error: Exception) -> None:
        lost = []
        for source, output in group.images:
            if not work.overwrite and output.exists():
                on_outcome(ImageOutcome(source, output, earlier=True))
            else:
                lost.append(ImageOutcome(source, output, error=error))
        if on_lost is not None and lost:
            on_lost(tuple(lost))
        else:
            done(group, tuple(lost))

    try:
        run_units(
            work,
            group_images(todo, per_group),
            runner,
            model=model,
            progress=progress,
            on_done=done,
            on_failed=failed,
            cancel=cancel,
        )
    finally:
        if not local:
            remove_temporaries(item.output for item in todo)  # left by workers killed mid-write

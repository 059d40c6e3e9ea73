"""Training batches: random aligned LR/HR patches with flips and 90-degree rotations, a pure function of the step.

Batch ``t`` of stage ``k`` is drawn from generators seeded with ``(seed, k, t)`` only, so it is the same whether
it is made in this process or in a worker, with any number of workers, and after a resume: the data order needs
no state beyond the step. Images are visited in a fresh random order each epoch (every image once per
``len(files)`` patches), as BasicSR's shuffled loader does.

Pixels come from memory when the decoded images (and their bicubic LR) fit in ``cache_bytes``, computed once
before the workers start (and shared with them); otherwise each patch is decoded from its file and degraded on the
fly. Both give the same batches. A file that fails to decode on the fly is skipped (the next image in the order
takes its place) and reported with the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError, HATError
from .degrade import load_rgb8, lr_window, make_lr, mod_crop

__all__ = ["Batch", "PatchBatches", "TrainingImages"]

_ORDER, _DRAWS = 1, 2  # stream labels of the two generators (epoch order, per-batch crops)


@dataclass
class Batch:
    """One step's patches as uint8 ``(B, 3, p, p)`` LR and ``(B, 3, sp, sp)`` HR tensors, plus the files that
    failed to decode while making it."""

    lr: torch.Tensor
    hr: torch.Tensor
    failed: list[str]

    def pin_memory(self) -> Batch:
        """Page-locked copies, for fast copies to a GPU (the DataLoader calls this with ``pin_memory=True``)."""
        return Batch(self.lr.pin_memory(), self.hr.pin_memory(), self.failed)


class TrainingImages:
    """The usable training files and, when they fit in ``cache_bytes``, their decoded HR and LR pixels."""

    def __init__(self, files: list[Path], sizes: list[tuple[int, int]], scale: int, cache_bytes: int) -> None:
        self.files = list(files)
        self.scale = scale
        need = sum(h * w * 3 * (1 + 1 / scale**2) for h, w in sizes)
        self.cached = need <= cache_bytes
        self.hr: list[np.ndarray | None] = []
        self.lr: list[np.ndarray | None] = []
        self.failed: list[tuple[Path, str]] = []
        if self.cached:
            for path in self.files:
                try:
                    hr = mod_crop(load_rgb8(path), scale)
                except HATError as exc:
                    self.failed.append((path, str(exc)))
                    hr = None
                self.hr.append(hr)
                self.lr.append(None if hr is None else make_lr(hr, scale))
            if all(h is None for h in self.hr):
                raise DataError("no training image could be decoded")

    def __len__(self) -> int:
        return len(self.files)

    def patch(self, index: int, draw: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A random ``size`` x ``size`` LR patch of image ``index`` and its HR patch, or None when the file cannot
        be decoded (or has become too small). Draws from ``draw`` the same way in both modes."""
        s = self.scale
        if self.cached:
            hr, lr = self.hr[index], self.lr[index]
        else:
            try:
                hr = mod_crop(load_rgb8(self.files[index]), s)
            except HATError:
                hr = None
            lr = None
        if hr is None or min(hr.shape[:2]) < size * s:
            return None
        h, w = hr.shape[0] // s, hr.shape[1] // s
        top, left = int(draw.integers(h - size + 1)), int(draw.integers(w - size + 1))
        hr_patch = hr[top * s : (top + size) * s, left * s : (left + size) * s]
        lr_patch = lr[top : top + size, left : left + size] if lr is not None else lr_window(hr, s, top, left, size)
        return lr_patch, hr_patch


class PatchBatches(Dataset[Batch]):
    """Map-style dataset whose item ``t`` is the batch of step ``t`` (for a DataLoader with ``batch_size=None``)."""

    def __init__(self, images: TrainingImages, *, patch: int, batch: int, seed: int, stage: int) -> None:
        self.images, self.patch, self.batch, self.seed, self.stage = images, patch, batch, seed, stage
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62  # indexed by step; the sampler says which steps

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, self.stage, _ORDER, epoch])
            self._order = (epoch, rng.permutation(len(self.images)))
        return self._order[1]

    def _image_at(self, sample: int) -> int:
        """The image of the ``sample``-th patch of the stage: position ``sample % N`` of its epoch's order."""
        n = len(self.images)
        return int(self._epoch_order(sample // n)[sample % n])

    def __getitem__(self, step: int) -> Batch:
        draw = np.random.default_rng([self.seed, self.stage, _DRAWS, step])
        n = len(self.images)
        lrs, hrs, failed = [], [], []
        for j in range(self.batch):
            sample = step * self.batch + j
            for attempt in range(n):
                index = self._image_at(sample) if attempt == 0 else (self._image_at(sample) + attempt) % n
                pair = self.images.patch(index, draw, self.patch)
                if pair is not None:
                    break
                failed.append(str(self.images.files[index]))
            else:
                raise DataError("no training image could be decoded")
            lr, hr = pair
            turns, flip = int(draw.integers(4)), bool(draw.integers(2))
            if flip:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
            lrs.append(np.rot90(lr, turns))
            hrs.append(np.rot90(hr, turns))
        lr_batch = np.ascontiguousarray(np.stack(lrs).transpose(0, 3, 1, 2))
        hr_batch = np.ascontiguousarray(np.stack(hrs).transpose(0, 3, 1, 2))
        return Batch(torch.from_numpy(lr_batch), torch.from_numpy(hr_batch), failed)

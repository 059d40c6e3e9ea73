"""Qt-free logic of the compare view's Explain mode: the LAM attribution map (``hat_plugin.attribution``) of the
output window around a clicked point, computed with the model the settings choose, and saving the heat map.

``explain`` runs on a worker thread (``worker.ExplainTask``); the window only shows what it returns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gui.batch_run import RunConfig
from gui.runner import model_spec
from hat_plugin import images, weights
from hat_plugin.errors import OptionError
from hat_plugin.progress import CancelCheck, ProgressFn, raise_if_cancelled

__all__ = [
    "ExplainModels",
    "ExplainRequest",
    "ExplainSource",
    "Explanation",
    "explain",
    "heatmap_name",
    "save_heatmap",
]


@dataclass(frozen=True)
class ExplainSource:
    """What is compared: how to read its input, its output file, the model that made it and the device."""

    image: Callable[[], np.ndarray[Any, Any]]
    """Reads the input the output was made from (the image, or the shown frame of a video), on the worker thread."""
    output: Path
    config: RunConfig
    """The model that made the output (or the settings' one) and the settings' device."""


@dataclass(frozen=True)
class ExplainRequest:
    """What to explain: the compared pair, the output pixel clicked, the output's size and the LAM settings."""

    source: ExplainSource
    point: tuple[int, int]
    """The clicked output pixel ``(x, y)``; the window is centred on it (kept inside the output)."""
    output_size: tuple[int, int]
    """The output's ``(width, height)``."""
    window: int = 16
    steps: int = 50


@dataclass(frozen=True)
class Explanation:
    """A finished map: the window it explains, its Diffusion Index, and the heat map over the input at the output's
    size (uint8 RGB), ready to show beside the output."""

    corner: tuple[int, int]
    window: int
    di: float
    heat: np.ndarray[Any, Any]
    overlay: np.ndarray[Any, Any]
    """The map alone at the output's size as RGBA uint8: heat colours, transparent where the map is 0 and opaque
    from its middle up, so it reads over any picture at any zoom (the app draws it over both sides)."""
    model: str
    seconds: float
    exact: bool
    """True when the network saw the whole input (LAM's own computation), False for a crop around the window."""


class ExplainModels:
    """The last network loaded for explaining, kept so clicking again does not load it again (one thread at a
    time: the window explains one point at a time)."""

    def __init__(self) -> None:
        self._key: tuple[str, int, str] | None = None
        self._net: Any = None
        self._lock = threading.Lock()

    def get(self, path: Path, device: str) -> Any:
        """The network of the weights ``path`` on ``device`` (float32, the precision LAM is defined in)."""
        from hat_plugin import load_model
        from hat_plugin.device import resolve_device

        target = resolve_device(device)
        key = (str(path), path.stat().st_mtime_ns, str(target))
        with self._lock:
            if self._key != key:
                self._net, self._key = None, None
                self._net, self._key = load_model(path, device=target), key
            return self._net


def explain(
    request: ExplainRequest, models: ExplainModels, progress: ProgressFn | None = None, cancel: CancelCheck = None
) -> Explanation:
    """The LAM map of the window around ``request.point`` (``HATError`` for a model of another scale than the
    output's, a window that does not fit, a flat window, ...; ``Cancelled`` when ``cancel`` is set). The path
    images per pass are the engine's choice from free memory (at most 8 on a CPU), so progress and cancel come
    between passes of a few steps."""
    from hat_plugin import attribution

    pixels = request.source.image()
    height, width = pixels.shape[:2]
    out_width, out_height = request.output_size
    scale = out_width // width if width else 0
    if scale < 1 or (width * scale, height * scale) != (out_width, out_height):
        raise OptionError(
            f"the output ({out_width}x{out_height}) is not a whole multiple of the input ({width}x{height})"
        )
    config = request.source.config
    spec, _entry, _why = model_spec(config, scale)
    path = weights.resolve(spec, cancel=cancel)
    raise_if_cancelled(cancel, "loading the model")
    net = models.get(path, config.engine.device)
    if net.config.upscale != scale:
        raise OptionError(
            f"the output is x{scale} but {weights.model_label(spec)} upscales x{net.config.upscale}: choose the "
            "model that made it in the settings"
        )
    corner = attribution.window_around(*request.point, out_width, out_height, request.window)
    result = attribution.lam(
        net,
        pixels,
        *corner,
        window=request.window,
        steps=request.steps,
        progress=progress,
        cancel=cancel,
    )
    heat = attribution.render_heatmap(pixels, result.map, size=(out_height, out_width))
    overlay = map_overlay(result.map, scale)
    return Explanation(
        corner, request.window, result.di, heat, overlay, weights.model_label(spec), result.seconds, result.exact
    )


def map_overlay(amap: np.ndarray[Any, Any], scale: int) -> np.ndarray[Any, Any]:
    """``amap`` (values in [0, 1]) enlarged ``scale`` times in square blocks as an RGBA heat layer: the LAM colours,
    alpha rising from 0 at 0 to opaque at 0.5, so the parts the model did not use leave the picture untouched."""
    from hat_plugin import attribution

    values = np.clip(np.nan_to_num(np.asarray(amap, dtype=np.float64), nan=0.0), 0.0, 1.0)
    big = np.repeat(np.repeat(values, scale, axis=0), scale, axis=1)
    alpha = np.round(np.clip(2.0 * big, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.dstack([attribution.colorize(big), alpha])


def heatmap_name(output: Path, explanation: Explanation) -> str:
    """A file name for the saved heat map: the output's name, the window's corner, PNG."""
    x, y = explanation.corner
    return f"{output.stem}_lam_{x}_{y}.png"


def save_heatmap(path: str | os.PathLike[str], explanation: Explanation) -> Path:
    """Write the heat map over the input as a PNG (atomically; a file the user chose to replace is replaced)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        target = target.with_name(target.name + ".png")
    images.write_image(target, images.Image(explanation.heat), overwrite=True)
    return target

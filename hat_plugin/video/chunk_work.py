"""A video job's chunks as units of work (``hat_plugin.workers``): the same ``run`` upscales them here or on a Ray
worker, so both produce the same segments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..workers.units import Events
from .index import FrameIndex
from .probe import VideoInfo
from .runner import frame_upscaler, run_chunks
from .segment import Chunk, OutputFormat
from .work import WorkFolder

if TYPE_CHECKING:
    from ..engine import Upscaler

__all__ = ["ChunkWork"]


@dataclass(frozen=True)
class ChunkWork:
    """Upscale chunks of ``info``'s video into their segments in ``folder``; a chunk's result is its frame count.

    ``index`` is the source's frames; consecutive chunks given in one call share one decode/infer/encode pipeline
    (``runner.run_chunks``) with ``streams`` frames upscaled at a time.
    """

    info: VideoInfo
    index: FrameIndex
    fmt: OutputFormat
    folder: WorkFolder
    streams: int = 1

    def run(self, engine: Upscaler, units: Sequence[Chunk], events: Events[Chunk, int]) -> None:
        """Upscale ``units`` (in order) into their segments."""
        run_chunks(
            self.info,
            self.index,
            self.fmt,
            units,
            self.folder.segment,
            self.folder.job,
            frame_upscaler(engine, self.info, self.fmt, self.streams),
            streams=self.streams,
            on_frame=events.report,
            on_chunk=lambda chunk: events.done(chunk, chunk.frames),
            cancel=events.cancel,
        )

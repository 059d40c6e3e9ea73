"""Video files end to end: decode, upscale every frame with the engine, encode, in resumable chunks.

    from hat_plugin.video import EncoderSettings, VideoJob

    job = VideoJob("film.mkv", "film_x4.mkv", model="HAT-S_SRx4", encoder=EncoderSettings("x265", crf=18))
    result = job.run(progress=lambda done, total: print(done, total), cancel=stop_event)

Modules: ``probe`` (what a file holds), ``colour`` (YUV <-> RGB by the declared matrix, range and siting),
``frames`` (pixel layouts), ``index`` (frame timestamps), ``decode`` (frame-exact reading), ``codecs`` (encoder
settings), ``segment`` and ``work`` (chunks on disk), ``mux`` (joining with the other streams), ``runner``
(the local decode/infer/encode pipeline), ``chunk_work`` (chunks as units of work, run here or on a Ray cluster by
``hat_plugin.workers``), ``job`` (all of it),
``preview`` (frames as RGB pictures, for a compare view).
Names are imported on first use, so checking file names (``is_video_name``) loads neither PyAV nor PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .names import VIDEO_EXTENSIONS, WORK_SUFFIX, WRITABLE_EXTENSIONS, is_video_name, output_extension

if TYPE_CHECKING:
    from .codecs import CODECS, EncoderSettings
    from .job import VideoJob, VideoPlan, VideoResult
    from .preview import FrameReader, frame_count, read_frame, read_poster
    from .probe import VideoInfo, probe

_LAZY = {
    "CODECS": "codecs",
    "EncoderSettings": "codecs",
    "VideoJob": "job",
    "VideoPlan": "job",
    "VideoResult": "job",
    "VideoInfo": "probe",
    "probe": "probe",
    "FrameReader": "preview",
    "frame_count": "preview",
    "read_frame": "preview",
    "read_poster": "preview",
}

__all__ = [
    "CODECS",
    "VIDEO_EXTENSIONS",
    "WORK_SUFFIX",
    "WRITABLE_EXTENSIONS",
    "EncoderSettings",
    "FrameReader",
    "VideoInfo",
    "VideoJob",
    "VideoPlan",
    "VideoResult",
    "frame_count",
    "is_video_name",
    "output_extension",
    "probe",
    "read_frame",
    "read_poster",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

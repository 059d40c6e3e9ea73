"""What the native shim calls: ``bind()`` hands the Python implementation of hat.Upscale to it.

``core.hat.InternalBind(func=...)`` makes VapourSynth's bindings wrap ``_call_upscale`` into a VSFunction,
which the shim then calls with the script's arguments. Results go back as ``{"clip": node}`` or
``{"error": message}``, so the user sees our message rather than a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import vapoursynth as vs

from .build import source_hash
from .errors import FUNCTION, message

_log = logging.getLogger(__name__)


def bind() -> None:
    """Register the implementation with the shim of the current core (called by hat_shim.c, GIL held)."""
    core = vs.core
    if source_hash() not in core.hat.name:
        raise vs.Error(
            f"the installed hat shim ({core.hat.plugin_path}) was built from another version of hat-plugin; "
            "rebuild it with `python -m vs_filter install`"
        )
    core.hat.InternalBind(func=_call_upscale)


def _call_upscale(**kwargs: Any) -> dict[str, object]:
    """Run ``filter.upscale`` and report the outcome in the form the shim reads."""
    try:
        from .filter import upscale

        return {"clip": upscale(**kwargs)}
    except vs.Error as exc:
        return {"error": str(exc)}
    except ImportError as exc:
        return {
            "error": message(
                f"cannot load hat-plugin's Python code ({exc}); reinstall hat-plugin in the Python environment "
                "that runs this script"
            )
        }
    except Exception as exc:  # a bug: keep the traceback in the log, give the user one line
        from hat_plugin.errors import describe_exception

        _log.error("%s failed", FUNCTION, exc_info=exc)
        return {"error": message(f"unexpected {describe_exception(exc)}")}

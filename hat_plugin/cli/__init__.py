"""The command line (``hat-upscale`` / ``python -m hat_plugin``).

``hat-upscale INPUT...`` upscales image files, folders and globs (``cli/upscale.py``); the other commands are the
first word: ``models`` and ``download`` (``cli/models.py``), ``train`` (``cli/train.py``), ``explain``
(``cli/explain.py``, LAM attribution maps), ``export`` (``cli/export.py``, ONNX). Each command is a module
with a function taking the remaining arguments and returning the exit code; ``COMMANDS`` maps the word to
it, imported only when used, so ``models`` and ``--help`` start without loading PyTorch.

Exit codes: 0 everything succeeded, 1 an input or the model failed, 2 usage error, 130 interrupted (Ctrl-C or
SIGTERM; no half-written file is left behind).
"""

from __future__ import annotations

import importlib
import sys

from hat_plugin.cli.base import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("hat_plugin.cli.models:run_models", "list the known models and which are on this machine"),
    "download": ("hat_plugin.cli.models:run_download", "fetch models into the cache, checking their sha256"),
    "train": ("hat_plugin.cli.train:run", "train or fine-tune HAT on a folder of images (resumable)"),
    "explain": ("hat_plugin.cli.explain:run", "LAM attribution map of an output window: what the model looks at"),
    "export": ("hat_plugin.cli.export:run", "write a model as ONNX for one tile size (OpenVINO, TensorRT, ...)"),
}
"""Command word -> ("module:function", one-line help). The upscale command is the default (no word)."""

DEFAULT_COMMAND = "hat_plugin.cli.upscale:run"


def _load(target: str) -> object:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    target = COMMANDS[argv[0]][0] if argv and argv[0] in COMMANDS else DEFAULT_COMMAND
    if target != DEFAULT_COMMAND:
        argv = argv[1:]
    command = _load(target)
    try:
        code = command(argv)  # type: ignore[operator]
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(code)

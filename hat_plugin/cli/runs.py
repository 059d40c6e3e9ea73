"""What the image and the video commands share: turning the command line's inputs into ``batch.Input``s, the model
(with a download bar), the plan's report, and the tally that decides the exit code."""

from __future__ import annotations

import argparse
import errno
import glob
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hat_plugin.batch import Input, Plan, find_files, path_too_long
from hat_plugin.cli.base import EXIT_FAILED, EXIT_OK, PROG, Console, UsageError
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError, describe_exception
from hat_plugin.files import NOT_REGULAR, is_regular_file
from hat_plugin.progress import tqdm_progress

if TYPE_CHECKING:
    from tqdm import tqdm

    from hat_plugin.arch import HAT
    from hat_plugin.config import HATConfig
    from hat_plugin.weights import ModelEntry

__all__ = ["DownloadBar", "Tally", "collect_inputs", "load_network", "model_mean", "model_source", "report_plan"]

GLOB_CHARS = frozenset("*?[")
NAMED = 3
"""Inputs named in the one line for several that failed together."""


@dataclass
class Tally:
    """What happened to the inputs of a run; its ``finish`` gives the exit code."""

    console: Console
    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    broken: bool = False
    """Something every input of a kind needs (the model) failed: said once, not counted per input."""

    def fail(self, message: str, exc: BaseException | None = None) -> None:
        """Count a failed input and say why (the traceback too with --verbose)."""
        self.failed.append(message)
        self.console.error(message, exc)

    def break_off(self, message: str, exc: BaseException | None = None) -> None:
        """Say why the inputs of a kind cannot be done at all (the model cannot be loaded); the run fails."""
        self.broken = True
        self.console.error(message, exc)

    def input_failed(self, source: Path, exc: Exception) -> None:
        """Count an input whose processing raised ``exc``: our errors as they read (naming the file once), any
        other exception as unexpected (a bug or a resource error must not end the batch)."""
        if isinstance(exc, HATError):
            message = worded(exc)
            self.fail(message if str(source) in message else f"{source}: {message}", exc)
        else:
            self.fail(f"{source}: unexpected {describe_exception(exc)}", exc)

    def inputs_failed(self, sources: Sequence[Path], exc: Exception) -> None:
        """Count each of ``sources``, which failed together for one reason (a cluster task lost for good), and say
        it once: how many, the first few, and why."""
        if len(sources) == 1:
            self.input_failed(sources[0], exc)
            return
        why = worded(exc) if isinstance(exc, HATError) else f"unexpected {describe_exception(exc)}"
        named = ", ".join(str(source) for source in sources[:NAMED])
        more = f" and {len(sources) - NAMED} more" if len(sources) > NAMED else ""
        self.failed.extend(f"{source}: {why}" for source in sources)
        self.console.error(f"{len(sources)} images failed ({named}{more}): {why}", exc)

    def finish(self) -> int:
        """Print the summary line; EXIT_FAILED if anything failed or nothing was done, else EXIT_OK."""
        parts = [f"{self.written} written"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        self.console.info(", ".join(parts))
        return EXIT_FAILED if self.failed or self.broken or self.written + self.skipped == 0 else EXIT_OK


def _mode(path: Path) -> int | None:
    """The file type bits of ``path``, or None when it does not exist (any lookup error: too long, a loop)."""
    try:
        return path.stat().st_mode
    except OSError:
        return None


def collect_inputs(
    texts: list[str],
    *,
    recursive: bool,
    out_dir: Path | None,
    accepts: Callable[[str], bool],
    kind: str,
    tally: Tally,
    explicit_accepts: Callable[[Path], bool] | None = None,
    refusal: str = "",
) -> list[Input]:
    """Files, folders and glob patterns -> inputs (in order, once each). Missing inputs, pipes, devices and
    over-long names count as failures; other files found in folders or by patterns are reported and left out.

    ``accepts(name)`` picks the files of folders and patterns; a file named explicitly is taken when
    ``explicit_accepts`` is None or accepts it (else it fails with ``refusal``).
    """
    console = tally.console
    seen: set[Path] = set()
    inputs: list[Input] = []
    if any(not text.strip() for text in texts):
        raise UsageError(f"an input is empty (''): name {kind} files, folders or glob patterns ('.' for this folder)")
    for text in texts:
        path = Path(text)
        mode = _mode(path)
        if mode is None and _too_long(path):
            tally.fail(f"{text[:60]}...: {path_too_long(text)}")
            continue
        if mode is not None and stat.S_ISDIR(mode):
            failures = len(tally.failed)
            found = [
                Input(file, sub, explicit=False)
                for file, sub in find_files(
                    path,
                    recursive,
                    accepts,
                    out_dir,
                    lambda p, why: console.info(f"skipped {p}: {why}"),
                    kind,
                    on_failed=lambda p, why: tally.fail(f"{str(p)[:60]}...{p.name[-40:]}: {why}"),
                )
            ]
            if not found and len(tally.failed) == failures:
                tally.fail(f"{path}: no {kind} files in this folder")
            subfolders = 0 if recursive else _count_subfolders(path)
            if subfolders:
                console.info(f"skipped {subfolders} subfolder(s) of {path}; use -r to include them")
        elif mode is not None and stat.S_ISREG(mode):
            if explicit_accepts is not None and not explicit_accepts(path):
                tally.fail(f"{path}: {refusal}")
                continue
            found = [Input(path)]
        elif mode is not None:
            tally.fail(f"{path}: {NOT_REGULAR}; give {kind} files")
            continue
        elif GLOB_CHARS & set(text):
            found = []
            for match in sorted(glob.glob(text, recursive=True)):
                if not is_regular_file(Path(match)):
                    continue
                if accepts(match):
                    found.append(Input(Path(match), explicit=False))
                else:
                    console.info(f"skipped {match}: not a {kind} file")
            if not found:
                tally.fail(f"{text}: no {kind} files match this pattern")
        else:
            tally.fail(f"{path}: no such file or folder")
            continue
        for item in found:
            key = item.source.resolve()  # the same name once; another name of the same file has its own output
            if key not in seen:
                seen.add(key)
                inputs.append(item)
    return inputs


def _too_long(path: Path) -> bool:
    try:
        path.stat()
    except OSError as exc:
        return exc.errno == errno.ENAMETOOLONG
    return False


def _count_subfolders(root: Path) -> int:
    try:
        return sum(1 for d in root.iterdir() if not d.name.startswith(".") and d.is_dir())
    except OSError:
        return 0


def report_plan(plan: Plan, tally: Tally) -> None:
    """Say what the plan leaves out, refuses and skips; refusals count as failures, skips as skipped."""
    for item, why in plan.left_out:
        tally.console.detail(f"left out {item.source}: {why}")
    for item, why in plan.failed:
        tally.fail(f"{item.source}: {why} (use --suffix or -o)")
    for item, why in plan.skipped:
        tally.skipped += 1
        tally.console.info(f"skipped {item.source}: {why.replace('overwrite is off', 'use --overwrite to replace it')}")


class DownloadBar:
    """A byte progress bar opened only when a download really starts (never for a cached or bundled model)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: tqdm[Any] | None = None

    def announce(self, entry: ModelEntry) -> None:
        self.console.info(f"downloading {entry.name} (once; it is cached for later runs)")
        self.bar = self.console.bar(
            total=entry.size, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.name, leave=False
        )

    def progress(self, done: int, total: int | None) -> None:
        if self.bar is not None:
            tqdm_progress(self.bar)(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def model_source(args: argparse.Namespace, console: Console) -> tuple[Path, str]:
    """The weights file of the run and its label: ``--weights``, ``--model`` or the default model (said why);
    a manifest model is fetched with a progress bar when needed. Raises ``HATError``."""
    from hat_plugin import weights

    spec = args.weights if args.weights is not None else args.model
    if spec is None:
        entry, why = weights.default_model(args.scale)
        console.info(f"no --model given: using {why}; see '{PROG} models'")
        spec = entry.name
    bar = DownloadBar(console)
    try:
        path = weights.resolve(spec, announce=bar.announce, progress=bar.progress)
    finally:
        bar.close()
    return path, weights.model_label(spec)


def load_network(source: Path, rgb_mean: str | None) -> Path | HAT:
    """What the engine loads: the weights file as is, or (with ``--rgb-mean``) the network with that mean."""
    if rgb_mean is None:
        return source
    from hat_plugin.checkpoint import load_model

    return load_model(source, rgb_mean=rgb_mean)


def model_mean(config: HATConfig) -> str:
    """The model line's words for the network's RGB mean."""
    from hat_plugin.rgb_mean import describe_rgb_mean

    return f"RGB mean {describe_rgb_mean(config.input_mean)}"

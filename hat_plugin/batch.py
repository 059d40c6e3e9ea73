"""Batch planning shared by the front ends: which files of a folder are inputs, and where each output goes.

The CLI and the desktop app both plan through ``plan_outputs`` with one ``OutputOptions``, so a folder yields the
same inputs, the same output names and the same decisions (skip, leave out, refuse) in either:

- an input found in a folder or by a glob that is the output of another input of the run is left out (re-running
  on a folder that holds earlier results must not upscale them again); one named explicitly is kept;
- an output that would replace an input, or another input's output, is refused; files are compared, not paths
  (``files.file_key``), so a bind mount, a hard link, a symbolic link or ``..`` cannot hide that it is the same;
- an existing output is skipped unless ``overwrite`` is set (and the write itself refuses to replace a file that
  appeared meanwhile, see ``files.atomic_path``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HATError, OptionError, OutputError
from .files import NOT_REGULAR, FileKey, file_key
from .images import extension_for, is_image_name, output_format
from .video.names import WORK_SUFFIX

__all__ = [
    "DEFAULT_SUFFIX",
    "Input",
    "OutputClaims",
    "OutputOptions",
    "Plan",
    "Planned",
    "find_files",
    "find_images",
    "format_suffix",
    "output_path",
    "path_too_long",
    "plan_outputs",
]

DEFAULT_SUFFIX = "_x{scale}"
FALLBACK_FORMAT = "PNG"
NAME_MAX = 255
"""Longest file name (in bytes) that common file systems accept."""


def format_suffix(template: str, scale: int, model: str) -> str:
    """The suffix added to output names: ``template`` with ``{scale}`` and ``{model}`` replaced.

    Raises ``OptionError`` for a template with a path separator or other placeholders.
    """
    if "/" in template or os.sep in template:
        raise OptionError(f"the suffix {template!r} contains a path separator; choose an output folder instead")
    try:
        return template.format(scale=scale, model=model)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise OptionError(f"the suffix {template!r}: only {{scale}} and {{model}} can be replaced ({exc})") from None


@dataclass(frozen=True)
class OutputOptions:
    """Where and how a run writes its outputs: the same options for every front end."""

    folder: Path | None = None
    """Output folder (sub-folders of the inputs kept below it); None writes beside each input."""
    file: Path | None = None
    """One named output file (for a single input); overrides ``folder`` and ``suffix``."""
    suffix: str = DEFAULT_SUFFIX
    """Added to each output name; ``{scale}`` and ``{model}`` are replaced."""
    format: str | None = None
    """Output format name (``png``, ``jpg``, ...); None keeps the input's when it can be written, else PNG."""
    overwrite: bool = False
    """Replace existing outputs (never inputs)."""
    kind: str = "image"
    """``image`` or ``video``: an output ``file`` of an image run must name an image format (videos: a container)."""

    def __post_init__(self) -> None:
        format_suffix(self.suffix, 2, "model")  # refuse a bad template before any work
        if self.format is not None:
            try:
                object.__setattr__(self, "format", output_format(None, self.format))
            except OutputError as exc:
                raise OptionError(str(exc)) from None
        if self.file is not None and self.kind == "image":
            try:
                file_format = output_format(self.file)
            except OutputError as exc:
                raise OptionError(f"{self.file}: {exc}") from None
            if self.format is not None and self.format != file_format:
                raise OptionError(f"the format {self.format.lower()} does not match the output file {self.file}")


@dataclass(frozen=True)
class Input:
    """One input file of a run."""

    source: Path
    subfolder: Path = Path()
    """Folder of ``source`` relative to the folder the user gave (kept under the output folder)."""
    explicit: bool = True
    """Named by the user (as opposed to found in a folder or by a glob)."""


@dataclass(frozen=True)
class Planned:
    """An input and the file its result goes to."""

    input: Input
    output: Path


@dataclass
class Plan:
    """What a run will do with each input."""

    todo: list[Planned] = field(default_factory=list)
    skipped: list[tuple[Input, str]] = field(default_factory=list)
    """Not processed, not an error: the output exists (and overwrite is off)."""
    left_out: list[tuple[Input, str]] = field(default_factory=list)
    """Found in a folder but it is the output of another input of this run."""
    failed: list[tuple[Input, str]] = field(default_factory=list)
    """Cannot be processed as asked: its output would replace an input or another input's output."""


def find_files(
    root: Path,
    recursive: bool,
    accepts: Callable[[str], bool],
    exclude: Path | None = None,
    on_skipped: Callable[[Path, str], None] | None = None,
    kind: str = "image",
    on_failed: Callable[[Path, str], None] | None = None,
) -> Iterator[tuple[Path, Path]]:
    """``(file, subfolder relative to root)`` for each file in ``root`` (and below when ``recursive``) whose name
    ``accepts``, sorted. Hidden files and folders, work folders and the ``exclude`` folder (e.g. the output folder)
    are left out; other entries (other files, pipes, devices) are passed to ``on_skipped`` with the reason, and
    accepted names that cannot be used (a path longer than the system allows) to ``on_failed``."""
    excluded = file_key(exclude) if exclude is not None else None
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not d.endswith(WORK_SUFFIX) and file_key(here / d) != excluded
        )
        if not recursive:
            dirs.clear()
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            if not accepts(name):
                if on_skipped is not None:
                    on_skipped(path, f"not {_article(kind)} file")
            elif (problem := _irregular(path)) is not None:
                report = on_failed if problem.startswith("the path is") else on_skipped
                if report is not None:
                    report(path, problem)
            else:
                yield path, here.relative_to(root)


def find_images(
    root: Path,
    recursive: bool,
    exclude: Path | None = None,
    on_skipped: Callable[[Path, str], None] | None = None,
) -> Iterator[tuple[Path, Path]]:
    """The image files of a folder (see ``find_files``)."""
    return find_files(root, recursive, is_image_name, exclude, on_skipped, "image")


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _irregular(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be opened, or None when it is one."""
    try:
        if stat.S_ISREG(path.stat().st_mode):
            return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return path_too_long(path)
    return NOT_REGULAR


def path_too_long(path: str | os.PathLike[str]) -> str:
    """Why a name the system refused as too long is so: the whole path, or one name in it."""
    size = len(os.fsencode(path))
    limit = _path_max()
    if size >= limit:
        return f"the path is {size:,} bytes long, more than this system allows ({limit - 1:,})"
    return "the name is too long for this file system"


def _path_max() -> int:
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096


def image_extension(source: Path, fmt: str | None) -> str:
    """The extension of an upscaled image: ``fmt``'s, or the input's when ``fmt`` is None and the input's format
    can be written, else PNG's."""
    try:
        same = output_format(source)
    except OutputError:
        same = None
    fmt = fmt or same or FALLBACK_FORMAT
    return source.suffix if fmt == same else extension_for(fmt)


def output_path(
    source: Path,
    subfolder: Path | None,
    output_dir: Path | None,
    suffix: str,
    fmt: str | None,
    extension: str | None = None,
) -> Path:
    """Where the upscaled ``source`` goes: beside it, or under ``output_dir`` keeping ``subfolder``.

    ``suffix`` is already formatted (e.g. ``_x4``). The extension is ``extension`` when given (videos choose
    their container), else ``image_extension(source, fmt)``.
    Raises ``OutputError`` when the name would be too long for a file system.
    """
    if "/" in suffix or os.sep in suffix:
        raise OutputError(f"the suffix {suffix!r} contains a path separator; choose an output folder instead")
    name = f"{source.stem}{suffix}{extension if extension is not None else image_extension(source, fmt)}"
    if len(os.fsencode(name)) > NAME_MAX:
        raise OutputError(
            f"the output name for {source.name[:40]}... would be {len(os.fsencode(name))} bytes long, more than "
            f"file systems allow ({NAME_MAX}); rename the input or use a shorter suffix"
        )
    if output_dir is None:
        return source.with_name(name)
    return output_dir / (subfolder or Path()) / name


def plan_outputs(
    inputs: Sequence[Input],
    options: OutputOptions,
    *,
    scale: int,
    model: str,
    extension: Callable[[Path], str] | None = None,
) -> Plan:
    """Decide what happens to each input (see the module docstring), in input order. ``extension(source)`` gives
    the output's extension where the image rule does not apply (videos)."""
    plan = Plan()
    suffix = format_suffix(options.suffix, scale, model)
    outputs: dict[Input, Path] = {}
    for item in inputs:
        try:
            ext = extension(item.source) if extension is not None else None
            outputs[item] = options.file or output_path(
                item.source, item.subfolder, options.folder, suffix, options.format, ext
            )
        except HATError as exc:
            plan.failed.append((item, str(exc)))
    producer = {file_key(out): file_key(item.source) for item, out in outputs.items()}
    kept = []
    for item in outputs:
        source = file_key(item.source)
        if not item.explicit and producer.get(source, source) != source:
            plan.left_out.append((item, "it is the output of another input of this run"))
        else:
            kept.append(item)
    claims = OutputClaims([item.source for item in kept])
    for item in kept:
        target = outputs[item]
        conflict = claims.conflict(item.source, target)
        if conflict:
            plan.failed.append((item, conflict))
        elif not options.overwrite and _exists(target):
            plan.skipped.append((item, f"{target} exists (overwrite is off)"))
        else:
            plan.todo.append(Planned(item, target))
    return plan


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


class OutputClaims:
    """Remembers which input each output belongs to in one run, so no output replaces an input or another
    input's output. Files are compared by ``files.file_key``, whatever path names them."""

    def __init__(self, sources: list[Path]) -> None:
        self._sources = {file_key(p): p for p in sources}
        self._claimed: dict[FileKey, tuple[FileKey, Path]] = {}

    def conflict(self, source: Path, target: Path) -> str | None:
        """Why ``source`` may not write ``target`` (a message), or None after recording the claim."""
        key = file_key(target)
        if key in self._sources:
            same = self._sources[key]
            through = "" if same.absolute() == target.absolute() else f" (the same file as {same})"
            return f"the output {target} would overwrite an input{through}; change the suffix or the output folder"
        claim = self._claimed.get(key)
        if claim is not None and claim[1].absolute() != source.absolute():
            twin = " (the same file by another path)" if claim[0] == file_key(source) else ""
            return f"its output {target} is already the output of {claim[1]}{twin}"
        self._claimed[key] = (file_key(source), source)
        return None

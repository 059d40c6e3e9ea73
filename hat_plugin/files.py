"""Writing files atomically: the bytes go to a temporary file beside the destination, which then replaces it.

Every output of the product (images, downloaded weights, the compiled VapourSynth shim, video segments, training
checkpoints) goes through here, so an interrupted or failed write never leaves a half-written file under the final
name, and the OS error becomes one ``OutputError`` that says what is wrong in words.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HATError, OutputError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "NOT_REGULAR",
    "atomic_path",
    "FileKey",
    "atomic_write",
    "describe_os_error",
    "file_key",
    "is_regular_file",
    "regular_file_problem",
    "refuse_inputs",
    "remove_temporaries",
    "require_regular_file",
    "sha256_digest",
    "sha256_file",
]

NOT_REGULAR = "not a regular file (a pipe, socket or device)"
"""Why a pipe, socket or device is refused wherever a file is read: reading one could block forever."""

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "permission denied (the folder is not writable)",
    errno.EROFS: "the folder is on a read-only file system",
    errno.ENOENT: "the folder does not exist",
    errno.EISDIR: "a folder of that name exists",
    errno.ENOTDIR: "a file is in the way of the output folder",
    errno.EEXIST: "a file is in the way of the output folder",
    errno.ENAMETOOLONG: "the file name is too long for this file system",
    errno.EFBIG: "the file is larger than this file system (or a size limit) allows",
}


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed file operation, in words a user can act on."""
    return _REASONS.get(exc.errno or 0, exc.strerror or str(exc))


def regular_file_problem(path: Path, mode: int, what: str) -> str | None:
    """Why a path whose ``stat`` mode is ``mode`` cannot be read as ``what`` ("an image file"), or None when it
    is a regular file."""
    if stat.S_ISDIR(mode):
        return f"{path}: is a folder, not {what}"
    if not stat.S_ISREG(mode):
        return f"{path}: {NOT_REGULAR}; give {what}"
    return None


def is_regular_file(path: Path) -> bool:
    """True when ``path`` (after links) is a regular file; ``stat`` only, so a pipe is never opened."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def require_regular_file(path: Path, what: str, error: type[HATError]) -> os.stat_result:
    """``path``'s ``stat`` when it is a regular file; otherwise ``error`` with one line naming the path and
    ``what`` should be given ("an image file"). ``stat`` only, so a pipe is never opened."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    problem = regular_file_problem(path, info.st_mode, what)
    if problem is not None:
        raise error(problem)
    return info


def sha256_digest(path: Path) -> _Hash:
    """The running sha256 of a file's bytes (more can be fed to it, as a resumed download does)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return sha256_digest(path).hexdigest()


FileKey = tuple[int, int, tuple[str, ...]]
"""What identifies a file whatever path reaches it (see ``file_key``)."""


def file_key(path: str | os.PathLike[str]) -> FileKey:
    """The identity of the file ``path`` names, whatever way the path reaches it (a bind mount, a hard link, a
    symbolic link, ``..``): ``(st_dev, st_ino, ())`` of the file when it exists, else those of its nearest existing
    folder and the names below it. Two paths with equal keys are the same file, or would create the same file."""
    path = Path(path).absolute()  # not normalised: ``..`` after a symbolic link is the kernel's to resolve
    rest: list[str] = []
    while True:
        try:
            info = os.stat(path)
        except (OSError, ValueError):  # missing, too long, a loop, a NUL byte: try the folder above
            if path.parent == path:
                return (-1, -1, (str(path), *reversed(rest)))
            rest.append(path.name)
            path = path.parent
            continue
        return (info.st_dev, info.st_ino, tuple(reversed(rest)))


def refuse_inputs(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise ``OutputError`` when ``output`` is one of ``inputs`` (the same file, through any path): the one check
    that keeps every writer of the product from replacing a file it reads."""
    key = file_key(output)
    for source in inputs:
        if file_key(source) == key:
            which = (
                "the input itself"
                if os.path.abspath(source) == os.path.abspath(output)
                else f"the input {source} itself (the same file through another path)"
            )
            raise OutputError(f"{output} is {which}; choose another output name or folder")


def _temp_name(path: Path) -> Path:
    """A hidden temporary name in the destination's folder, short enough for any file system."""
    stem = path.name[:80]
    return path.with_name(f".{stem}.{secrets.token_hex(4)}.tmp")


_TEMP = re.compile(r"^\.(?P<stem>.+)\.[0-9a-f]{8}\.tmp$", re.DOTALL)


def remove_temporaries(paths: Iterable[Path]) -> int:
    """Remove the temporary files ``atomic_path`` left beside ``paths`` when its process was killed mid-write
    (each folder is read once); returns how many. Only for outputs no other process is writing now."""
    stems: dict[Path, set[str]] = {}
    for path in paths:
        stems.setdefault(path.parent, set()).add(path.name[:80])
    removed = 0
    for folder, names in stems.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMP.match(entry.name)
            if match is not None and match["stem"] in names:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished temporary file its final name; without ``overwrite`` never replace an existing file."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails if path exists: no check-then-replace race between processes
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the best that remains is check, then rename
        if path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(temp, path)
    else:
        os.unlink(temp)


def _make_folders(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` and its missing parents, recording (outermost first) the ones this call created."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:
            if not each.is_dir():
                raise
            continue  # made meanwhile by another writer: not ours to remove
        created.append(each)


def _remove_empty(created: list[Path]) -> None:
    """After a failed write, remove the folders it created, innermost first, as long as they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    *,
    mode: int = 0o666,
    make_parents: bool = True,
    overwrite: bool = True,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that needs a file name (safetensors, a muxer, a
    compiler); when the block succeeds the file is flushed to disk and renamed over ``path``, when it fails (or is
    interrupted) the temporary file is removed, and so are the folders it created if they are empty. OS errors become
    ``OutputError``.

    With ``overwrite=False`` the final step refuses to replace a file that appeared meanwhile (another process
    writing the same output): ``OutputError`` saying it exists, and the existing file is left as it was.
    ``inputs`` are the files the writer reads: ``path`` is never one of them (``refuse_inputs``, checked before the
    write starts and again just before the rename).
    """
    path = Path(path)
    inputs = tuple(inputs)
    refuse_inputs(path, inputs)
    temp = _temp_name(path)
    created: list[Path] = []
    try:
        if make_parents:
            _make_folders(path.parent, created)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        os.close(fd)
    except OSError as exc:
        _remove_empty(created)
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from exc
    try:
        yield temp
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        refuse_inputs(path, inputs)
        _publish(temp, path, overwrite)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        _remove_empty(created)
        if isinstance(exc, FileExistsError) and not overwrite:
            raise OutputError(f"{path} already exists (written meanwhile by another program?); not replaced") from exc
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from exc
        raise


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o666,
    make_parents: bool = True,
    overwrite: bool = True,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_path``)."""
    with (
        atomic_path(path, mode=mode, make_parents=make_parents, overwrite=overwrite, inputs=inputs) as temp,
        open(temp, "wb") as file,
    ):
        file.write(data)

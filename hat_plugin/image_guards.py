"""Checks that keep a hostile or damaged input file from hanging the reader or exhausting memory.

Each guard runs before the expensive step it protects and raises ``ImageError``:

- ``open_input``: regular files only, opened without blocking (a FIFO or device gets an error, never a hang);
- ``pillow_open``: Pillow's format detection with our pixel limit (``limits.check_pixels``) in place of Pillow's
  process-wide one, which only warns below twice its limit and cannot follow ``--max-pixels``;
- ``check_png_chunks``: one rule for every PNG, whatever decoder then reads it: each chunk's checksum (CRC) must
  match, and compressed metadata (zTXt, iTXt, iCCP) may inflate to Pillow's text limits at most, measured in
  bounded steps (a metadata bomb);
- ``scan_png16``: a 16-bit PNG's size from IHDR, then its compressed pixel data inflated in bounded steps and
  counted (pypng would inflate a zlib bomb whole), and its ICC profile inflated with a size cap;
- ``count_tiff_pages`` and ``check_tiff_segments``: pages counted, and each compressed strip or tile of a deep
  TIFF measured before tifffile inflates it whole.
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import png
import tifffile
from PIL import Image as PILImage
from PIL import PngImagePlugin, UnidentifiedImageError

from .errors import ImageError
from .files import NOT_REGULAR, describe_os_error, regular_file_problem
from .limits import check_pixels

__all__ = [
    "MAX_ICC_BYTES",
    "check_png_chunks",
    "check_tiff_segments",
    "count_tiff_pages",
    "open_input",
    "pillow_open",
    "scan_png16",
]

MAX_ICC_BYTES = PngImagePlugin.MAX_TEXT_CHUNK
"""Largest ICC profile accepted from a compressed iCCP chunk: Pillow's limit, so 8- and 16-bit PNGs agree (real
profiles are kilobytes)."""
MAX_TIFF_PAGES = 1000
"""Pages counted at most (a count is all a refusal needs)."""
_STEP = 1 << 20
_SLACK = 1024
_PNG_PLANES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def open_input(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file, without blocking on a pipe or device; the caller closes
    the returned file. Errors name the path."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO without a writer, opened for reading on some systems, or a socket
            raise ImageError(f"{path}: {NOT_REGULAR}; give an image file") from None
        raise ImageError(f"{path}: cannot read the file ({describe_os_error(exc)})") from None
    try:
        problem = regular_file_problem(path, os.fstat(fd).st_mode, "an image file")
        if problem is not None:
            raise ImageError(problem)
        file = os.fdopen(fd, "rb")
        file.raw.name = str(path)  # type: ignore[attr-defined]  # readers (tifffile) want a name, not the fd
        return file
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def pillow_open(file: BinaryIO, max_pixels: int) -> Iterator[PILImage.Image]:
    """``PIL.Image.open`` for a file we opened, with ``max_pixels`` checked from the header instead of Pillow's
    ``MAX_IMAGE_PIXELS`` (a process-wide setting that warns, and refuses only at twice its value)."""
    PILImage.preinit()  # the common formats first, in the order PIL.Image.open tries them
    PILImage.init()  # then every other format plugin (both only once per process)
    prefix = file.read(16)
    for name in PILImage.ID:
        factory, accept = PILImage.OPEN[name]
        try:
            verdict = accept(prefix) if accept is not None else True
            if not verdict or isinstance(verdict, str):
                continue
            file.seek(0)
            im = factory(file, "")
        except (SyntaxError, IndexError, TypeError, struct.error):  # not this format: try the next, as Pillow does
            continue
        try:
            check_pixels(im.size[0], im.size[1], max_pixels)
            yield im
        finally:
            im.close()
        return
    raise UnidentifiedImageError("cannot identify image file")


# ------------------------------------------------------------------------------------------------------- PNG


def check_png_chunks(file: BinaryIO) -> None:
    """Walk every chunk of a PNG (positioned at its start; left there afterwards): a chunk whose checksum does not
    match, or compressed metadata that inflates past ``PngImagePlugin.MAX_TEXT_CHUNK`` per chunk or
    ``MAX_TEXT_MEMORY`` in all, is an ``ImageError``, for 8-bit (Pillow) and 16-bit (pypng) files alike.
    Chunks are read in bounded steps; pixel data is left to the decoders' own bounded checks, a truncated file to
    their messages."""
    start = file.tell()
    file.seek(start + 8)
    inflated = 0
    while True:
        head = file.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack("!I4s", head)
        if kind in _PNG_METADATA and length > 2 * PngImagePlugin.MAX_TEXT_CHUNK:
            _metadata_bomb(kind)  # deflate never shrinks data to less than about its own size
        crc, body, left = zlib.crc32(kind), [], length
        while left:
            block = file.read(min(left, _STEP))
            if not block:
                break
            left -= len(block)
            crc = zlib.crc32(block, crc)
            if kind in _PNG_METADATA:
                body.append(block)
        stored = file.read(4)
        if left or len(stored) < 4:
            break
        if struct.unpack("!I", stored)[0] != crc:
            raise ImageError(
                f"the PNG is damaged: its {kind.decode('latin-1')} chunk does not match its checksum (CRC); re-save "
                "or download it again"
            )
        if kind in _PNG_METADATA:
            inflated += _metadata_size(kind, b"".join(body), inflated)
        if kind == b"IEND":
            break
    file.seek(start)


_PNG_METADATA = frozenset({b"zTXt", b"iTXt", b"iCCP"})


def _metadata_size(kind: bytes, body: bytes, before: int) -> int:
    """Bytes a compressed metadata chunk inflates to (0 when it is stored uncompressed or damaged: the decoders
    leave it out or say so); past the limits, an ``ImageError``."""
    keyword_end = body.find(b"\0")
    if keyword_end < 0:
        return 0
    if kind == b"iTXt":
        if body[keyword_end + 1 : keyword_end + 2] != b"\1":
            return 0  # not compressed
        language_end = body.find(b"\0", keyword_end + 3)
        translated_end = body.find(b"\0", language_end + 1) if language_end >= 0 else -1
        if translated_end < 0:
            return 0
        data = body[translated_end + 1 :]
    else:
        data = body[keyword_end + 2 :]
    inflater, inflated = zlib.decompressobj(), 0
    try:
        while data:
            inflated += len(inflater.decompress(data, _STEP))
            if inflated > PngImagePlugin.MAX_TEXT_CHUNK or before + inflated > PngImagePlugin.MAX_TEXT_MEMORY:
                _metadata_bomb(kind)
            data = inflater.unconsumed_tail
    except zlib.error:
        return 0
    return inflated


def _metadata_bomb(kind: bytes) -> None:
    raise ImageError(
        f"the PNG's {kind.decode('latin-1')} metadata expands to more than {PngImagePlugin.MAX_TEXT_CHUNK >> 20} MiB "
        "(a decompression bomb in its metadata?); save the picture again without it"
    )


def scan_png16(file: BinaryIO, max_pixels: int) -> tuple[bytes | None, bytes | None]:
    """Check a PNG before pypng decodes it and return its ICC profile and EXIF (raw TIFF-structured bytes).

    The pixel count comes from IHDR; the IDAT stream is inflated in 1 MiB steps and refused as soon as it gives
    more bytes than the header's size needs. A damaged ICC profile is dropped with a warning, as Pillow does."""
    icc = exif = None
    expected = 0
    inflater = zlib.decompressobj()
    inflated = 0
    for kind, body in png.Reader(file=file).chunks():
        if kind == b"IHDR":
            if len(body) != 13:
                raise ImageError("the PNG header (IHDR) is damaged")
            width, height, depth, colour, _compression, _filter, interlace = struct.unpack("!2I5B", body)
            check_pixels(width, height, max_pixels)
            expected = _png_raw_size(width, height, depth, _PNG_PLANES.get(colour, 4), bool(interlace))
        elif kind == b"iCCP":
            icc = _png_icc(body)
        elif kind == b"eXIf":
            exif = body
        elif kind == b"IDAT":
            if not expected:
                raise ImageError("the PNG has pixel data before its header (IHDR); the file is damaged")
            data = body
            while data:
                inflated += len(inflater.decompress(data, _STEP))
                if inflated > expected + _SLACK:
                    raise ImageError(
                        "the PNG's compressed pixels expand beyond the size its header declares "
                        "(a damaged file or a decompression bomb)"
                    )
                data = inflater.unconsumed_tail
    return icc, exif


def _png_raw_size(width: int, height: int, depth: int, planes: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines a PNG of this size holds once inflated (one filter byte per row)."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            total += rows * (1 + -(-(cols * planes * depth) // 8))
    return total


def _png_icc(body: bytes) -> bytes | None:
    """The profile of an iCCP chunk (name, NUL, method, zlib data), or None with a warning when it is damaged."""
    try:
        inflater = zlib.decompressobj()
        profile = inflater.decompress(body[body.index(b"\0") + 2 :], MAX_ICC_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError("over the size cap")
        return profile or None
    except (ValueError, zlib.error):
        warnings.warn("the PNG's embedded ICC profile is damaged; it is left out", stacklevel=5)
        return None


# ------------------------------------------------------------------------------------------------------ TIFF


def count_tiff_pages(tif: tifffile.TiffFile) -> int:
    """Full-resolution pages in the main chain (reduced-resolution previews left out), counted up to
    ``MAX_TIFF_PAGES``."""
    count = 0
    for index, page in enumerate(tif.pages):
        if index >= MAX_TIFF_PAGES:
            break
        if not getattr(page, "is_reduced", False):
            count += 1
    return count


def check_tiff_segments(file: BinaryIO, page: tifffile.TiffPage) -> None:
    """Refuse a TIFF page whose strips or tiles overlap or inflate beyond the size the header gives them, before
    tifffile decodes them (it inflates each whole, and decodes PackBits into a Python list)."""
    measure = _SEGMENT_MEASURES.get(int(page.compression))
    counts = [int(c) for c in page.databytecounts]
    size = os.fstat(file.fileno()).st_size
    if sum(counts) > size:
        raise ImageError("the TIFF's strips add up to more bytes than the file has (damaged or malicious)")
    if measure is None:
        return
    if page.is_tiled:
        samples = page.tilelength * page.tilewidth * max(page.tiledepth, 1)
    else:
        samples = min(page.rowsperstrip or page.imagelength, page.imagelength) * page.imagewidth
    if page.planarconfig == tifffile.PLANARCONFIG.CONTIG:
        samples *= page.samplesperpixel
    limit = samples * math.ceil(page.bitspersample / 8) + _SLACK
    for offset, count in zip(page.dataoffsets, counts, strict=False):
        if count == 0:
            continue
        file.seek(offset)
        if measure(file.read(count), limit) > limit:
            raise ImageError(
                "a compressed strip of this TIFF expands beyond the size its header declares "
                "(a damaged file or a decompression bomb)"
            )


def _zlib_size(data: bytes, limit: int) -> int:
    inflater = zlib.decompressobj()
    total = 0
    while data and total <= limit:
        total += len(inflater.decompress(data, _STEP))
        data = inflater.unconsumed_tail
    return total


def _lzma_size(data: bytes, limit: int) -> int:
    inflater = lzma.LZMADecompressor()
    total = len(inflater.decompress(data, _STEP))
    while not inflater.eof and not inflater.needs_input and total <= limit:
        total += len(inflater.decompress(b"", _STEP))
    return total


def _packbits_size(data: bytes, limit: int) -> int:
    """Bytes a PackBits stream decodes to, walked over its control bytes only (stops past ``limit``)."""
    total = index = 0
    while index < len(data) and total <= limit:
        control = data[index]
        if control < 128:
            total += control + 1
            index += control + 2
        elif control > 128:
            total += 257 - control
            index += 2
        else:
            index += 1
    return total


_SEGMENT_MEASURES: dict[int, Callable[[bytes, int], int]] = {
    tifffile.COMPRESSION.ADOBE_DEFLATE: _zlib_size,
    tifffile.COMPRESSION.DEFLATE: _zlib_size,
    tifffile.COMPRESSION.LZMA: _lzma_size,
    tifffile.COMPRESSION.PACKBITS: _packbits_size,
}

"""Reading and writing image files: pixels as numpy arrays for the engine, with ICC profile and EXIF carried along.

Why three libraries: Pillow decodes almost every format but holds at most 8 bits per channel for colour images
(16 bits only for grey), so 16-bit PNGs go through pypng (pure Python, keeps every bit, and lets us add the
``iCCP``/``eXIf`` chunks ourselves) and TIFFs deeper than 8 bits or in floating point through tifffile.

Reading applies the EXIF orientation to the pixels and resets the tag to 1, so no viewer rotates the result twice.
Palette images become RGB/RGBA, 1-bit becomes grey; grey + alpha stays two channels (the engine takes ``HxWx2``);
CMYK becomes RGB through its embedded ICC profile when it has one.

Writing keeps the depth where the format can (PNG and TIFF: 8 or 16 bits, TIFF also float32) and is atomic: the
bytes go to a temporary file in the destination folder, which then replaces the destination, and is removed on
any error or interrupt. Formats that only hold 8 bits (JPEG, WebP, BMP) get 8 bits with a warning; JPEG has no
alpha, nor has BMP as Pillow writes it (readers ignore its fourth byte), so RGBA and grey + alpha are flattened onto
white with a warning; WebP has no grey + alpha, which is written as RGBA.
TIFF output carries the ICC profile but not the EXIF.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, UnidentifiedImageError

from hat_plugin.errors import ImageError, OutputError, describe_exception
from hat_plugin.files import atomic_write
from hat_plugin.image_guards import (
    check_png_chunks,
    check_tiff_segments,
    count_tiff_pages,
    open_input,
    pillow_open,
    scan_png16,
)
from hat_plugin.limits import check_pixels, default_max_pixels, max_file_bytes
from hat_plugin.pixels import convert_depth

__all__ = [
    "IMAGE_EXTENSIONS",
    "WRITE_FORMATS",
    "Image",
    "extension_for",
    "is_image_name",
    "output_format",
    "read_image",
    "write_image",
]

WRITE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
"""Formats :func:`write_image` can produce."""

_FORMAT_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
IMAGE_EXTENSIONS = tuple(_FORMAT_BY_EXTENSION)
"""Extensions of the formats images are written in (always read too; Pillow may read more, see ``is_image_name``)."""
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_EXTENSION_BY_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_DEFAULT_QUALITY = 95

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_KNOWN_SIGNATURES = (_PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", *_TIFF_MAGICS)
_HEAD_BYTES = 64
_FIRST_FRAME_FORMATS = frozenset({"MPO", "PSD", "TIFF"})
"""Formats whose first frame is the whole picture (a camera's MPO preview, PSD layers; TIFF pages are counted by
``_decode_tiff``, which leaves reduced-resolution previews out), so further frames are no reason to refuse."""
_EXIF_HEADER = b"Exif\x00\x00"
_TAG_ORIENTATION, _TAG_EXIF_IFD, _TAG_PIXEL_X, _TAG_PIXEL_Y, _TAG_ICC = 0x0112, 0x8769, 0xA002, 0xA003, 34675
_TIFF_SHORT, _TIFF_LONG = 3, 4


@dataclass
class Image:
    """Pixels plus the metadata worth carrying from an input file to its upscaled output."""

    pixels: np.ndarray
    """``HxW`` (grey), ``HxWx2`` (grey + alpha), ``HxWx3`` (RGB) or ``HxWx4`` (RGBA); ``uint8``, ``uint16`` or
    ``float32`` (floats in [0, 1])."""
    icc_profile: bytes | None = None
    """Embedded ICC colour profile, if any."""
    exif: bytes | None = None
    """EXIF as TIFF-structured bytes (no ``Exif\\0\\0`` prefix), orientation already reset to 1."""
    format: str | None = None
    """Pillow-style name of the format the pixels were read from (``"PNG"``, ``"JPEG"``, ...)."""


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when the file name has an extension of a format this module can read (used to filter folders)."""
    return Path(path).suffix.lower() in _readable_extensions()


@functools.cache
def _readable_extensions() -> frozenset[str]:
    PILImage.init()
    readable = {ext for ext, fmt in PILImage.registered_extensions().items() if fmt in PILImage.OPEN}
    return frozenset(readable | set(_FORMAT_BY_EXTENSION))


def output_format(path: str | os.PathLike[str] | None, format: str | None = None) -> str:
    """The format to write: ``format`` (``png``, ``jpg``, ...) if given, else the one named by ``path``'s extension.

    Raises:
        OutputError: the format is not one :func:`write_image` can write.
    """
    if format is not None:
        name = format.strip().lstrip(".").upper()
        name = _FORMAT_ALIASES.get(name, name)
        if name not in WRITE_FORMATS:
            raise OutputError(f"cannot write format {format!r}; choose one of {_format_choices()}")
        return name
    suffix = Path(path).suffix.lower() if path is not None else ""
    if suffix not in _FORMAT_BY_EXTENSION:
        raise OutputError(f"cannot tell the output format from {str(path)!r}; use one of {_format_choices()}")
    return _FORMAT_BY_EXTENSION[suffix]


def extension_for(format: str) -> str:
    """The usual file extension (with the dot) for an output format name accepted by :func:`output_format`."""
    return _EXTENSION_BY_FORMAT[output_format(None, format)]


def _format_choices() -> str:
    return ", ".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)


# ---------------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Read an image file into an :class:`Image` with orientation applied.

    The file is opened without blocking and must be a regular file; its size and the pixel count its header
    claims are checked against ``max_pixels`` (default: what this machine's memory allows, see
    :mod:`hat_plugin.limits`; 0: no limit) before any pixel is decoded. Animations and multi-page files are refused.

    Raises:
        ImageError: the file is missing, not a regular file, unreadable, not an image, too big, or in a layout
            that cannot be upscaled; the message names the file.
    """
    path = Path(path)
    limit = default_max_pixels() if max_pixels is None else max_pixels
    try:
        with open_input(path) as file:
            image, orientation = _decode(file, limit)
    except ImageError as exc:
        raise ImageError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not an image, or in a format this program cannot read") from exc
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"{path}: {exc} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS)") from exc
    except MemoryError as exc:
        raise ImageError(f"{path}: not enough memory to decode this image") from exc
    except Exception as exc:  # decoders raise many types (OSError, ValueError, SyntaxError, zlib.error, ...)
        raise ImageError(f"{path}: not a readable image ({describe_exception(exc)})") from exc
    image.pixels = np.ascontiguousarray(_orient(image.pixels, orientation))
    return image


def _decode(file: BinaryIO, max_pixels: int) -> tuple[Image, int]:
    """Pick the decoder from the first bytes; returns the image (not yet oriented) and its EXIF orientation.

    Only the header is read before the file's size is checked, so a huge file is never read whole."""
    head = file.read(_HEAD_BYTES)
    if not head:
        raise ImageError("the file is empty, not an image")
    file.seek(0)
    size = os.fstat(file.fileno()).st_size
    largest = max_file_bytes(max_pixels)
    if largest and size > largest:
        known = head.startswith(_KNOWN_SIGNATURES) or head[8:12] == b"WEBP"
        what = "an image within the pixel limit" if known else "an image (is it one?)"
        raise ImageError(
            f"the file is {size / 1e9:,.1f} GB, more than {what} can need ({largest / 1e9:,.1f} GB for "
            f"{max_pixels / 1e6:,.1f} megapixels); raise the limit with {{max_pixels}} if it is a real image",
            option="max_pixels",
        )
    if head.startswith(_PNG_SIGNATURE):
        check_png_chunks(file)
        if len(head) > 24 and head[24] == 16:
            return _decode_png16(file, max_pixels)
    if head[:4] in _TIFF_MAGICS:
        decoded = _decode_tiff(file, max_pixels)
        if decoded is not None:
            return decoded
        file.seek(0)
    return _decode_pillow(file, max_pixels)


def _decode_pillow(file: BinaryIO, max_pixels: int) -> tuple[Image, int]:
    with pillow_open(file, max_pixels) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and im.format not in _FIRST_FRAME_FORMATS:
            raise ImageError(_frames_message(frames, "an animation"))
        im.load()
        icc = im.info.get("icc_profile") or None
        exif = _strip_exif_header(im.info.get("exif"))
        orientation = im.getexif().get(_TAG_ORIENTATION, 1)
        if im.mode == "CMYK":
            pixels, icc = _cmyk_to_rgb(im, icc), None
        else:
            pixels = _pillow_pixels(im)
        return Image(pixels, icc, _reset_orientation(exif), im.format), orientation


def _frames_message(frames: int, kind: str) -> str:
    return (
        f"it holds {frames} frames ({kind}); only single pictures are upscaled: extract the frames first "
        "(e.g. ffmpeg -i INPUT frame%04d.png) and upscale those"
    )


def _pillow_pixels(im: PILImage.Image) -> np.ndarray:
    """Pillow image in any mode -> HxW / HxWx2 / HxWx3 / HxWx4 array, uint8 (uint16 for 16-bit grey)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 0xFFFF):
            raise ImageError("32-bit integer pixels are not supported; save it as 16-bit or float")
        return values.astype(np.uint16)
    if mode == "F":
        raise ImageError("32-bit float images are only supported as TIFF")
    has_alpha = "A" in mode or "a" in mode or "transparency" in im.info
    if mode in ("1", "L", "LA", "La"):
        return np.asarray(im.convert("LA" if has_alpha else "L"))
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def _cmyk_to_rgb(im: PILImage.Image, icc: bytes | None) -> np.ndarray:
    """Convert CMYK to sRGB through the embedded profile when there is a usable one, plainly otherwise."""
    if icc is not None:
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return np.asarray(ImageCms.profileToProfile(im, source, _srgb_profile(), outputMode="RGB"))
        warnings.warn("the CMYK image's ICC profile is unusable; converted to RGB without it", stacklevel=4)
    return np.asarray(im.convert("RGB"))


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _decode_png16(file: BinaryIO, max_pixels: int) -> tuple[Image, int]:
    """A 16-bit PNG through pypng, every bit kept: metadata and the bounds first, then the rows."""
    icc, raw_exif = scan_png16(file, max_pixels)
    exif = _strip_exif_header(raw_exif)
    file.seek(0)
    reader = png.Reader(file=file)
    reader.preamble()
    reader.sbit = None  # keep the stored 16-bit samples; pypng would shift them down to the sBIT depth
    width, height, rows, info = reader.asDirect()
    planes = info["planes"]
    pixels = np.empty((height, width * planes), np.uint16)
    count = 0
    for count, row in enumerate(rows, 1):
        if count > height:
            break
        pixels[count - 1] = np.asarray(row, dtype=np.uint16)
    if count != height:
        raise ImageError(f"the PNG has {count} rows where its header says {height} (truncated?)")
    pixels = pixels.reshape(height, width, planes)
    return Image(_squeeze(pixels), icc, _reset_orientation(exif), "PNG"), _exif_orientation(exif)


def _decode_tiff(file: BinaryIO, max_pixels: int) -> tuple[Image, int] | None:
    """Decode a TIFF with more than 8 bits or float samples; None when Pillow can decode it without loss.

    Every TIFF is inspected here first: more than one full-resolution page is refused, and the size is checked
    before anything is decoded (also for the 8-bit ones Pillow then reads)."""
    with tifffile.TiffFile(file) as tif:
        page = tif.pages.first
        check_pixels(page.imagewidth, page.imagelength * max(page.imagedepth, 1), max_pixels)
        pages = count_tiff_pages(tif)
        if pages > 1:
            raise ImageError(_frames_message(pages, "a multi-page TIFF"))
        _check_tiff_channels(page)
        is_float = page.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
        if page.bitspersample <= 8 and not is_float:
            return None
        check_tiff_segments(file, page)
        try:
            pixels = page.asarray(maxworkers=1)
        except ValueError as exc:
            if "imagecodecs" in str(exc) and page.samplesperpixel == 1 and not is_float:
                return None  # Pillow decodes 16-bit grey in every TIFF compression
            if "imagecodecs" in str(exc):
                raise ImageError(
                    f"this {page.bitspersample}-bit TIFF uses {tifffile.COMPRESSION(page.compression).name} "
                    "compression, which needs "
                    "the imagecodecs package: pip install imagecodecs (or save it uncompressed or with ZIP)"
                ) from exc
            raise
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pixels.ndim == 3:
            pixels = np.moveaxis(pixels, 0, -1)
        pixels = _tiff_samples(pixels, page)
        icc = page.tags.valueof(_TAG_ICC)
        orientation = page.tags.valueof(_TAG_ORIENTATION, default=1)
        return Image(pixels, bytes(icc) if icc else None, None, "TIFF"), orientation


_TIFF_COLOUR_CHANNELS: dict[int, int] = {
    tifffile.PHOTOMETRIC.MINISBLACK: 1,
    tifffile.PHOTOMETRIC.MINISWHITE: 1,
    tifffile.PHOTOMETRIC.PALETTE: 1,
    tifffile.PHOTOMETRIC.RGB: 3,
    tifffile.PHOTOMETRIC.YCBCR: 3,
    tifffile.PHOTOMETRIC.CIELAB: 3,
    tifffile.PHOTOMETRIC.SEPARATED: 4,
}


def _check_tiff_channels(page: tifffile.TiffPage) -> None:
    """One rule for every TIFF, whatever its depth: colour channels plus at most one alpha channel; more (a
    multispectral scan, an image with extra masks) is refused with the count rather than guessed at."""
    colour = _TIFF_COLOUR_CHANNELS.get(page.photometric, 0)
    samples = page.samplesperpixel
    if colour and samples > colour + 1:
        raise ImageError(
            f"the TIFF has {samples} channels per pixel ({colour} colour and {samples - colour} extra); only grey, "
            "RGB or CMYK images with at most one alpha channel can be upscaled: save it without the extra channels"
        )


def _tiff_samples(pixels: np.ndarray, page: tifffile.TiffPage) -> np.ndarray:
    """Deep TIFF samples -> HxW / HxWx2 / HxWx3 / HxWx4 in uint16 or float32, straight (unassociated) alpha."""
    if pixels.dtype.kind == "f":
        pixels, top = pixels.astype(np.float32), 1.0
    elif pixels.dtype == np.uint16:
        top = 0xFFFF
    else:
        raise ImageError(f"TIFF samples of type {pixels.dtype} are not supported (use 16-bit or float)")
    photometric = page.photometric
    if photometric == tifffile.PHOTOMETRIC.SEPARATED and pixels.ndim == 3 and pixels.shape[2] >= 4:
        ink = pixels[..., :4].astype(np.float32) / top  # plain conversion: no profile for deep CMYK
        rgb = (1 - ink[..., :3]) * (1 - ink[..., 3:4])
        return rgb if top == 1.0 else np.round(rgb * top).astype(np.uint16)
    if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE, tifffile.PHOTOMETRIC.RGB):
        name = tifffile.PHOTOMETRIC(photometric).name
        raise ImageError(f"TIFF colour space {name} is not supported for deep images")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    colour = 3 if photometric == tifffile.PHOTOMETRIC.RGB else 1
    has_alpha = pixels.shape[2] > colour
    pixels = pixels[..., : colour + has_alpha].copy()
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        pixels[..., 0] = top - pixels[..., 0]
    if has_alpha and page.extrasamples[:1] == (tifffile.EXTRASAMPLE.ASSOCALPHA,):
        pixels = _unpremultiply(pixels, top)
    return _squeeze(pixels)


def _unpremultiply(pixels: np.ndarray, top: float) -> np.ndarray:
    values = pixels.astype(np.float32)
    alpha = values[..., -1:] / top
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(alpha > 0, values[..., :-1] / alpha, 0.0)
    values[..., :-1] = np.clip(colour, 0, top)
    return values if top == 1.0 else np.round(values).astype(pixels.dtype)


def _squeeze(pixels: np.ndarray) -> np.ndarray:
    """HxWx1 -> HxW; other layouts unchanged."""
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) so that row 0 is the top of the picture as it is meant to be seen."""
    match orientation:
        case 2:
            return pixels[:, ::-1]
        case 3:
            return pixels[::-1, ::-1]
        case 4:
            return pixels[::-1]
        case 5:
            return pixels.swapaxes(0, 1)
        case 6:
            return np.rot90(pixels, -1)
        case 7:
            return pixels.swapaxes(0, 1)[::-1, ::-1]
        case 8:
            return np.rot90(pixels, 1)
    return pixels


# ------------------------------------------------------------------------------------------------------- EXIF


def _strip_exif_header(exif: bytes | None) -> bytes | None:
    if not exif:
        return None
    return exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif


def _exif_entries(tiff: bytes) -> tuple[str, dict[int, int]]:
    """Byte order and {tag: entry offset} for IFD0 and the Exif sub-IFD of TIFF-structured EXIF bytes."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    entries: dict[int, int] = {}
    if order is None:
        return "<", entries
    with contextlib.suppress(struct.error):
        ifd = struct.unpack_from(order + "I", tiff, 4)[0]
        for _ in range(2):  # IFD0, then the Exif sub-IFD it points to
            sub_ifd = 0
            for index in range(struct.unpack_from(order + "H", tiff, ifd)[0]):
                entry = ifd + 2 + 12 * index
                tag = struct.unpack_from(order + "H", tiff, entry)[0]
                entries.setdefault(tag, entry)
                if tag == _TAG_EXIF_IFD:
                    sub_ifd = struct.unpack_from(order + "I", tiff, entry + 8)[0]
            if not sub_ifd:
                break
            ifd = sub_ifd
    return order, entries


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    order, entries = _exif_entries(exif)
    entry = entries.get(_TAG_ORIENTATION)
    if entry is None or len(exif) < entry + 10:
        return 1
    return int(struct.unpack_from(order + "H", exif, entry + 8)[0])


def _patch_exif(exif: bytes | None, values: dict[int, int]) -> bytes | None:
    """Overwrite single SHORT/LONG tags in place; every other byte of the EXIF block stays as it was."""
    if not exif:
        return exif
    order, entries = _exif_entries(exif)
    patched = bytearray(exif)
    for tag, value in values.items():
        entry = entries.get(tag)
        if entry is None or len(patched) < entry + 12:
            continue
        kind, count = struct.unpack_from(order + "HI", patched, entry + 2)
        if count == 1 and kind == _TIFF_SHORT and value <= 0xFFFF:
            struct.pack_into(order + "H", patched, entry + 8, value)
        elif count == 1 and kind == _TIFF_LONG:
            struct.pack_into(order + "I", patched, entry + 8, value)
    return bytes(patched)


def _reset_orientation(exif: bytes | None) -> bytes | None:
    return _patch_exif(exif, {_TAG_ORIENTATION: 1})


# ---------------------------------------------------------------------------------------------------- writing


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    format: str | None = None,
    quality: int | None = None,
    *,
    overwrite: bool = True,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Write ``image`` to ``path`` atomically; creates missing parent folders. With ``overwrite=False`` an existing
    ``path`` (one that appeared since the run was planned, say) is left alone and ``OutputError`` says so; ``path``
    is never one of ``inputs`` (the files the result was made from), whatever path reaches them.

    Args:
        path: destination file; its extension picks the format unless ``format`` is given.
        image: pixels and metadata (ICC profile, EXIF) to write.
        format: ``png``, ``jpg``, ``webp``, ``tif`` or ``bmp`` (any case).
        quality: JPEG/WebP quality 1-100 (default 95; WebP at 100 is lossless). Ignored by other formats.

    Raises:
        OutputError: unsupported format, unwritable or missing folder, full disk; the message names the file.
        ImageError: the pixel array has a layout no image file can hold.
    """
    path = Path(path)
    fmt = output_format(path, format)
    pixels = _check_layout(image.pixels)
    try:
        data = _encode(pixels, image, fmt, _DEFAULT_QUALITY if quality is None else quality)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {path}: {fmt} encoding failed ({exc})") from exc
    atomic_write(path, data, overwrite=overwrite, inputs=inputs)


def _check_layout(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ImageError(f"cannot store pixels of shape {pixels.shape}: expected HxW or HxWx2/3/4")
    if pixels.dtype not in (np.uint8, np.uint16) and pixels.dtype.kind != "f":
        raise ImageError(f"cannot store pixels of type {pixels.dtype}: expected uint8, uint16 or float")
    return pixels


def _encode(pixels: np.ndarray, image: Image, fmt: str, quality: int) -> bytes:
    icc = _matching_icc(image.icc_profile, pixels)
    exif = _patch_exif(_strip_exif_header(image.exif), {_TAG_PIXEL_X: pixels.shape[1], _TAG_PIXEL_Y: pixels.shape[0]})
    if fmt == "TIFF":
        return _encode_tiff(pixels, icc)
    if fmt == "PNG" and pixels.dtype != np.uint8:
        if pixels.dtype.kind == "f":
            warnings.warn("PNG cannot hold float samples; writing 16-bit integers", stacklevel=4)
        return _encode_png16(convert_depth(pixels, np.uint16), icc, exif)
    if pixels.dtype != np.uint8:
        warnings.warn(
            f"{fmt} holds only 8 bits per channel; writing 8-bit (use PNG or TIFF to keep the depth)", stacklevel=4
        )
        pixels = convert_depth(pixels, np.uint8)
    if fmt in ("JPEG", "BMP") and _has_alpha(pixels):
        warnings.warn(
            f"{fmt} as written here has no transparency; flattening onto white (use PNG or WebP to keep alpha)",
            stacklevel=4,
        )
        pixels = _flatten_on_white(pixels)
    elif fmt == "WEBP" and pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]
    buffer = io.BytesIO()
    im = PILImage.fromarray(pixels)
    if fmt == "PNG":
        im.save(buffer, "PNG", icc_profile=icc, exif=exif or b"", compress_level=6)
    elif fmt == "JPEG":
        options = {"quality": quality, "subsampling": "4:4:4" if quality >= 90 else "4:2:0", "icc_profile": icc}
        try:
            im.save(buffer, "JPEG", exif=_EXIF_HEADER + exif if exif else b"", **options)
        except ValueError:  # EXIF over JPEG's 64 KiB segment limit
            warnings.warn("EXIF block too large for JPEG; written without EXIF", stacklevel=4)
            buffer = io.BytesIO()
            im.save(buffer, "JPEG", **options)
    elif fmt == "WEBP":
        im.save(buffer, "WEBP", quality=quality, lossless=quality >= 100, exact=True, icc_profile=icc, exif=exif or b"")
    else:
        im.save(buffer, fmt)
    return buffer.getvalue()


def _matching_icc(icc: bytes | None, pixels: np.ndarray) -> bytes | None:
    """The profile if its colour space (header bytes 16-20) fits the pixels; a grey profile on RGB is dropped."""
    if not icc or len(icc) < 20:
        return None
    expected = b"GRAY" if pixels.ndim == 2 or pixels.shape[2] == 2 else b"RGB "
    return icc if icc[16:20] == expected else None


def _encode_png16(pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    writer = png.Writer(
        pixels.shape[1], pixels.shape[0], greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16
    )
    plain = io.BytesIO()
    writer.write_array(plain, pixels.reshape(-1))
    chunks = list(png.Reader(bytes=plain.getvalue()).chunks())
    extra = []
    if icc:
        extra.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        extra.append((b"eXIf", exif))
    out = io.BytesIO()
    png.write_chunks(out, chunks[:1] + extra + chunks[1:])  # right after IHDR, before IDAT
    return out.getvalue()


def _encode_tiff(pixels: np.ndarray, icc: bytes | None) -> bytes:
    if pixels.dtype.kind == "f":
        pixels = pixels.astype(np.float32)
    rgb = pixels.ndim == 3 and pixels.shape[2] >= 3
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric="rgb" if rgb else "minisblack",
        extrasamples=("unassalpha",) if _has_alpha(pixels) else None,
        compression="zlib",
        iccprofile=icc,
        metadata=None,
    )
    return buffer.getvalue()


def _has_alpha(pixels: np.ndarray) -> bool:
    return pixels.ndim == 3 and pixels.shape[2] in (2, 4)


def _flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    alpha = pixels[..., -1:].astype(np.float32) / 255
    flat = np.round(pixels[..., :-1] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return flat[..., 0] if flat.shape[2] == 1 else flat

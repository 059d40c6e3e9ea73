"""Hostile and damaged image files made in the tests: tiny files whose headers claim huge sizes, compressed data that
expands far beyond what its header declares, animations, pipes; and a runner for code that could exhaust memory
(a subprocess under an address-space limit), so a regression fails a test instead of taking the machine down."""

from __future__ import annotations

import functools
import io
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parent.parent
SMALL = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body))


def png_file(
    width: int,
    height: int,
    depth: int = 8,
    colour: int = 0,
    idat: bytes | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A PNG with this IHDR; ``idat`` (zlib data) defaults to a few compressed zero rows, far fewer than claimed."""
    ihdr = struct.pack("!2I5B", width, height, depth, colour, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(bytes(64))
    chunks = [png_chunk(b"IHDR", ihdr)]
    chunks += [png_chunk(kind, body) for kind, body in extra or []]
    chunks += [png_chunk(b"IDAT", idat), png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


@functools.cache
def zlib_bomb(size: int) -> bytes:
    """zlib data that inflates to ``size`` zero bytes (about a thousandth of that compressed)."""
    compressor = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


def tiff_file(
    width: int,
    height: int,
    bits: int = 16,
    samples: int = 1,
    compression: int = 1,
    strip: bytes | None = None,
) -> bytes:
    """A little-endian baseline TIFF with one strip; the strip defaults to a few bytes, far fewer than claimed."""
    strip = bytes(16) if strip is None else strip
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, bits),
        (259, 3, 1, compression),
        (262, 3, 1, 2 if samples >= 3 else 1),
        (273, 4, 1, 0),  # strip offset, patched below
        (277, 3, 1, samples),
        (278, 4, 1, height),
        (279, 4, 1, len(strip)),
    ]
    if samples not in (1, 3):  # the common layouts have no extra samples; these describe theirs (unassociated)
        entries.append((338, 3, 1, 2))
        entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0)
    return bytes(out) + strip


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is patched to claim ``width`` x ``height``."""
    buffer = io.BytesIO()
    PILImage.fromarray(SMALL).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A real small GIF whose logical screen and first frame are patched to claim ``width`` x ``height``."""
    buffer = io.BytesIO()
    PILImage.fromarray(SMALL[..., 0]).save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<HH", data, 6, width, height)
    frame = data.index(b"\x2c")
    struct.pack_into("<HH", data, frame + 5, width, height)
    return bytes(data)


def animation(fmt: str, frames: int = 3) -> bytes:
    """An animation of ``frames`` different 8x8 frames in GIF, PNG (APNG), WEBP or TIFF (pages)."""
    images = [PILImage.fromarray((SMALL + 40 * i).astype(np.uint8)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


def run_limited(code: str, memory: int = 3 << 30, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python (this repository importable) with its address space capped at ``memory``
    bytes: a decoder that tries to allocate a bomb's claimed size fails there with MemoryError, not here."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap,
        env=env,
        cwd=REPO,
        check=False,
    )


def read_all_limited(paths: dict[str, Path], max_pixels: int | None, memory: int = 3 << 30) -> dict[str, str]:
    """``read_image`` on each path in one memory-capped subprocess: ``{key: "ok HxW..." or "ExcType: message"}``."""
    code = f"""
import json, sys, warnings
warnings.simplefilter("error")  # a Pillow DecompressionBombWarning must not be what the user gets
from hat_plugin.images import read_image
paths = json.loads({json.dumps(json.dumps({k: str(v) for k, v in paths.items()}))})
out = {{}}
for key, path in paths.items():
    try:
        out[key] = "ok " + repr(read_image(path, max_pixels={max_pixels!r}).pixels.shape)
    except BaseException as exc:
        out[key] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""
    done = run_limited(code, memory)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON header of a safetensors file."""
    with open(path, "rb") as file:
        length = struct.unpack("<Q", file.read(8))[0]
        return json.loads(file.read(length))


def sparse_safetensors(path: Path, shapes: dict[str, list[int]], dtype: str = "F32") -> int:
    """A safetensors file whose header declares ``shapes`` (offsets laid out in order) and whose data is a hole:
    the file is as long as the header says, but takes no disk and no time to write, whatever size it claims.
    Returns the bytes of tensor data it claims."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I8": 1, "U8": 1}
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        size = sizes["I64" if "index" in name else dtype] * int(np.prod(shape, dtype=np.int64))
        kind = "I64" if "index" in name else dtype
        header[name] = {"dtype": kind, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(body)) + body)
        file.truncate(8 + len(body) + offset)
    return offset

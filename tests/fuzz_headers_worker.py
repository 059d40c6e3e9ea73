"""The header fuzzing of ``test_fuzz_headers.py``, run in a memory-capped subprocess (``python -c``): Hypothesis
mutates the first bytes of small valid images of every format we read (byte flips, big integers written over size
fields, truncation; PNG chunk checksums repaired so the damage reaches the decoders) and checks that

- ``read_image`` returns an image or raises a ``HATError``, nothing else, within a few seconds;
- the CLI on such a file exits 0 with a complete, readable output or 1 with no output file at all (no temporary
  file left either), never reporting an unexpected error or a traceback.

Prints one JSON line of counts; a failure raises with Hypothesis's falsifying example (non-zero exit).
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import struct
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import png
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from hat_plugin.errors import HATError
from hat_plugin.images import read_image

EXAMPLE_SECONDS = 10
MAX_PIXELS = 1 << 16
SIZE_VALUES = (0, 1, 255, 0xFFFF, 65500, 0x7FFFFFFF, 0xFFFFFFFF)


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    seeds = {}
    for fmt, mode in (("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("WEBP", "RGB"), ("TIFF", "RGB")):
        buffer = io.BytesIO()
        image = PILImage.fromarray(rgb).convert(mode)
        image.save(buffer, fmt, **({"save_all": True, "append_images": [image]} if fmt == "GIF" else {}))
        seeds[fmt.lower()] = buffer.getvalue()
    deep = (rgb.astype(np.uint16) * 257)[..., 0]
    buffer = io.BytesIO()
    png.Writer(7, 6, greyscale=True, bitdepth=16).write_array(buffer, deep.reshape(-1))
    seeds["png16"] = buffer.getvalue()
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, rgb.astype(np.uint16) * 257, compression="zlib", photometric="rgb")
    seeds["tiff16"] = buffer.getvalue()
    return seeds


SEEDS = _seeds()


def _fix_png_checksums(data: bytes) -> bytes:
    """Recompute the CRC of every whole chunk, so mutated chunks reach the decoders instead of failing the CRC."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, position = bytearray(data), 8
    while position + 12 <= len(out):
        (length,) = struct.unpack_from("!I", out, position)
        end = position + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into("!I", out, end, zlib.crc32(bytes(out[position + 4 : end])))
        position = end + 4
    return bytes(out)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    head = min(len(data), 160)
    for offset, value in draw(st.lists(st.tuples(st.integers(0, head - 1), st.integers(0, 255)), max_size=6)):
        data[offset] = value
    for offset, value, order in draw(
        st.lists(st.tuples(st.integers(0, head - 4), st.sampled_from(SIZE_VALUES), st.sampled_from("<>")), max_size=2)
    ):
        struct.pack_into(order + "I", data, offset, value)
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    mutated = bytes(data[:cut] if cut is not None else data)
    return _fix_png_checksums(mutated) if draw(st.booleans()) else mutated


@contextlib.contextmanager
def deadline(seconds: int):
    def expired(_signum, _frame):
        raise TimeoutError(f"took more than {seconds} s (a hang?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of both fuzz loops: reproducible (derandomized, no example database), no per-example
    deadline (the reader's own alarm bounds each example), every health check off (the inputs are large on purpose)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def fuzz_reader(folder: Path, examples: int, counts: Counter[str]) -> None:
    @_fuzz_settings(examples)
    @given(mutated_files())
    def check(data: bytes) -> None:
        path = folder / "fuzz.img"
        path.write_bytes(data)
        with deadline(EXAMPLE_SECONDS):
            try:
                image = read_image(path, max_pixels=MAX_PIXELS)
            except HATError:
                counts["reader: HATError"] += 1
                return
        assert image.pixels.ndim in (2, 3) and image.pixels.size > 0
        counts["reader: image"] += 1

    check()


def fuzz_cli(folder: Path, weights: str, examples: int, counts: Counter[str]) -> None:
    from hat_plugin.cli import main

    @_fuzz_settings(examples)
    @given(mutated_files())
    def check(data: bytes) -> None:
        source, out = folder / "in.png", folder / "out"
        source.write_bytes(data)
        for old in out.glob("*") if out.is_dir() else []:
            old.unlink()
        errors = io.StringIO()
        with deadline(EXAMPLE_SECONDS * 3), contextlib.redirect_stderr(errors):
            code = main([str(source), "-o", str(out), "--weights", weights, "--device", "cpu", "--max-pixels", "4096"])
        text = errors.getvalue()
        assert "unexpected" not in text and "Traceback" not in text, text
        written = sorted(out.iterdir()) if out.is_dir() else []
        if code == 0:
            assert [p.name for p in written] == ["in_x2.png"], written
            with PILImage.open(written[0]) as result:
                result.load()  # complete and decodable
            counts["cli: written"] += 1
        else:
            assert code == 1, (code, text)
            assert written == [], f"partial output left: {written}"
            counts["cli: failed cleanly"] += 1

    check()


def main(weights: str, reader_examples: int, cli_examples: int) -> None:
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as folder:
        fuzz_reader(Path(folder), reader_examples, counts)
        fuzz_cli(Path(folder), weights, cli_examples, counts)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

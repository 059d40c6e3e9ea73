"""The ``models`` and ``download`` commands of ``hat-upscale``: list the known models, fetch them into the cache."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from tqdm import tqdm

from hat_plugin.cli.base import EXIT_FAILED, EXIT_OK, PROG
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError
from hat_plugin.progress import tqdm_progress
from hat_plugin.weights import ModelEntry, cache_dir, fetch, is_cached, list_models, local_path

__all__ = ["run_download", "run_models"]


def _size(entry: ModelEntry) -> str:
    return f"{entry.size / 1e6:.1f} MB" if entry.size else "?"


def _state(entry: ModelEntry) -> str:
    if entry.bundled:
        return "bundled" if is_cached(entry.name) else "missing"
    return "yes" if is_cached(entry.name) else "no"


def _print_table(rows: list[tuple[ModelEntry, str]]) -> None:
    header = ("NAME", "SCALE", "VARIANT", "SIZE", "CACHED", "DESCRIPTION")
    cells = [header] + [(e.name, f"x{e.scale}", e.variant, _size(e), state, e.description) for e, state in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def run_models(argv: list[str]) -> int:
    """List every known model with its scale, file size and whether its verified file is on this machine."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} models",
        description="List the HAT models this program knows, and which are already downloaded and verified.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    args = parser.parse_args(argv)
    try:
        rows = [(entry, _state(entry)) for entry in list_models()]
        folder = cache_dir()
    except HATError as exc:
        print(f"{PROG} models: error: {worded(exc)}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        listing = [asdict(e) | {"cached": state in ("yes", "bundled"), "path": str(local_path(e))} for e, state in rows]
        json.dump(listing, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return EXIT_OK
    _print_table(rows)
    print(f"\ncache: {folder} (HAT_PLUGIN_CACHE changes it); download with '{PROG} download NAME'")
    return EXIT_OK


def _download(name: str, quiet: bool) -> str:
    """Fetch one model; a progress bar on stderr only when bytes actually have to come over the network."""
    if quiet or is_cached(name):
        return str(fetch(name))
    with tqdm(desc=name, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr) as bar:
        return str(fetch(name, progress=tqdm_progress(bar)))


def run_download(argv: list[str]) -> int:
    """Download and verify the named models (or all of them) into the cache; print each file's path."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} download",
        description="Download models into the cache, checking size and sha256. An interrupted download resumes; "
        "HAT_PLUGIN_MIRROR names a server tried first.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"model names (see '{PROG} models')")
    parser.add_argument("--all", action="store_true", help="every downloadable model (about 1.5 GB)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if bool(args.names) == args.all:
        parser.error("name one or more models, or use --all")
    try:
        names = [e.name for e in list_models() if not e.bundled] if args.all else args.names
    except HATError as exc:
        print(f"{PROG} download: error: {worded(exc)}", file=sys.stderr)
        return EXIT_FAILED
    failed = []
    for name in names:
        try:
            print(_download(name, args.quiet), flush=True)
        except HATError as exc:
            print(f"{PROG} download: {worded(exc)}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"{PROG} download: {len(failed)} of {len(names)} failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK

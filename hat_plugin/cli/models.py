"""The ``models`` and ``download`` commands of ``hat-upscale``: list the known models (with licence and origin),
add your own by name (``models add``), forget them (``models remove``), fetch models into the cache."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from hat_plugin.cli.base import EXIT_FAILED, EXIT_OK, PROG, Console, UsageError, add_talk_options, run_parsed
from hat_plugin.cli.options import rgb_mean_arg
from hat_plugin.cli.runs import DownloadBar
from hat_plugin.cli.wording import worded
from hat_plugin.errors import HATError, UnverifiedError
from hat_plugin.weights import (
    ModelEntry,
    cache_dir,
    fetch,
    get_entry,
    is_cached,
    list_models,
    local_path,
    sha256_file,
    user_manifest_path,
)

__all__ = ["run_download", "run_models"]


def _size(entry: ModelEntry) -> str:
    return f"{entry.size / 1e6:.1f} MB" if entry.size else "?"


def _state(entry: ModelEntry) -> str:
    if entry.bundled:
        return "bundled" if is_cached(entry.name) else "missing"
    if entry.path is not None:
        return "yours" if is_cached(entry.name) else "missing"
    return "yes" if is_cached(entry.name) else "no"


def _origin(entry: ModelEntry) -> str:
    words = {"official": "HAT authors", "community": "community", "project": "this project", "user": "you"}
    mean = f", mean {entry.rgb_mean}" if entry.rgb_mean and entry.rgb_mean != "official" else ""
    hashed = "" if entry.attested else ", hash unattested"
    return words.get(entry.origin, entry.origin) + mean + hashed


def _print_table(rows: list[tuple[ModelEntry, str]]) -> None:
    header = ("NAME", "SCALE", "VARIANT", "SIZE", "CACHED", "LICENSE", "FROM", "DESCRIPTION")
    cells = [header] + [
        (e.name, f"x{e.scale}", e.variant, _size(e), state, e.license, _origin(e), e.description) for e, state in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def run_models(argv: list[str]) -> int:
    """List every known model with its scale, file size, licence, origin and whether its verified file is on this
    machine; ``models add`` / ``models remove`` manage the user's own models."""
    if argv and argv[0] == "add":
        return _run_add(argv[1:])
    if argv and argv[0] == "remove":
        return _run_remove(argv[1:])
    interrupted = "interrupted; nothing was changed"
    return run_parsed(_list_parser(), argv, _list, interrupted=interrupted, name=f"{PROG} models")


def _list_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} models",
        description="List the HAT models this program knows, and which are already downloaded and verified. "
        f"'{PROG} models add FILE|URL --name NAME' adds your own model, '{PROG} models remove NAME' forgets it.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    add_talk_options(parser)
    return parser


def _list(args: argparse.Namespace, console: Console) -> int:
    try:
        rows = [(entry, _state(entry)) for entry in list_models()]
        folder = cache_dir()
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    if args.json:
        listing = [
            asdict(e) | {"cached": state in ("yes", "bundled", "yours"), "path": str(local_path(e))}
            for e, state in rows
        ]
        json.dump(listing, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return EXIT_OK
    _print_table(rows)
    print(f"\ncache: {folder} (HAT_PLUGIN_CACHE changes it); download with '{PROG} download NAME'")
    print(f"your models: {user_manifest_path()} ('{PROG} models add FILE|URL --name NAME')")
    return EXIT_OK


def _add_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} models add",
        description="Add a HAT weights file or URL as a model you can name (--model NAME in the CLI, model=NAME in "
        "the VapourSynth filter, the app's model list). A file stays where it is; a URL is downloaded into the "
        "cache. Nothing is recorded unless the file is a complete HAT checkpoint with the expected sha256.",
    )
    parser.add_argument("source", metavar="FILE|URL", help="a .pth/.safetensors file, or an https:// URL")
    parser.add_argument("--name", required=True, help="the name to use it by")
    parser.add_argument("--sha256", help="the sha256 the file must have (a URL needs it or --trust-unverified)")
    parser.add_argument("--rgb-mean", type=rgb_mean_arg, metavar="MEAN", help="official (default), 0.5 or R,G,B")
    parser.add_argument(
        "--trust-unverified", action="store_true", help="download a URL without a known sha256 (its hash is printed)"
    )
    add_talk_options(parser)
    return parser


def _remove_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} models remove",
        description="Forget a model you added (a downloaded copy is deleted from the cache; a file you added "
        "from disk stays where it is).",
    )
    parser.add_argument("name", metavar="NAME")
    add_talk_options(parser)
    return parser


def _run_add(argv: list[str]) -> int:
    interrupted = "interrupted; add it again to finish (a download goes on where it stopped)"
    return run_parsed(_add_parser(), argv, _add, interrupted=interrupted, name=f"{PROG} models add")


def _run_remove(argv: list[str]) -> int:
    interrupted = f"interrupted; '{PROG} models' lists what is recorded now"
    return run_parsed(_remove_parser(), argv, _remove, interrupted=interrupted, name=f"{PROG} models remove")


def _add(args: argparse.Namespace, console: Console) -> int:
    from hat_plugin.user_models import add_model  # PyTorch loads only to check a model being added

    try:
        entry = add_model(
            args.source,
            args.name,
            sha256=args.sha256,
            rgb_mean=args.rgb_mean,
            trust_unverified=args.trust_unverified,
        )
    except UnverifiedError as exc:
        console.error(f"{worded(exc)}: give --sha256, or --trust-unverified", exc)
        return EXIT_FAILED
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    if args.trust_unverified and not args.sha256 and entry.urls:
        print(f"{entry.name}: sha256 {entry.sha256} (not verified: no hash was given to compare with)")
    mean = entry.rgb_mean or "official"
    print(f"added {entry.name}: x{entry.scale} {entry.variant}, RGB mean {mean}, {local_path(entry)}")
    return EXIT_OK


def _remove(args: argparse.Namespace, console: Console) -> int:
    from hat_plugin.user_models import remove_model

    try:
        entry = remove_model(args.name)
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    print(f"removed {entry.name}")
    return EXIT_OK


def _download(name: str, console: Console, trust: bool) -> str:
    """Fetch one model; a progress bar only when bytes actually have to come over the network."""
    bar = DownloadBar(console)
    try:
        return str(fetch(name, announce=bar.announce, progress=bar.progress, trust_unverified=trust))
    finally:
        bar.close()


def run_download(argv: list[str]) -> int:
    """Download and verify the named models (or all of them) into the cache; print each file's path."""
    interrupted = "interrupted; download again to go on where it stopped"
    return run_parsed(_download_parser(), argv, _download_all, interrupted=interrupted, name=f"{PROG} download")


def _download_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} download",
        description="Download models into the cache, checking size and sha256. An interrupted download resumes; "
        "HAT_PLUGIN_MIRROR names a server tried first.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"model names (see '{PROG} models')")
    parser.add_argument("--all", action="store_true", help="every downloadable model (about 1.5 GB)")
    parser.add_argument(
        "--trust-unverified",
        action="store_true",
        help="also download models whose hash no public record states (the hash each file has is printed)",
    )
    add_talk_options(parser)
    return parser


def _download_all(args: argparse.Namespace, console: Console) -> int:
    if bool(args.names) == args.all:
        raise UsageError("name one or more models, or use --all")
    try:
        everything = [e for e in list_models() if not e.bundled and e.path is None and (e.urls or not e.attested)]
        names = [e.name for e in everything if e.attested or args.trust_unverified] if args.all else args.names
    except HATError as exc:
        console.error(worded(exc), exc)
        return EXIT_FAILED
    failed = []
    for name in names:
        try:
            path = _download(name, console, args.trust_unverified)
            print(path, flush=True)
            if args.trust_unverified and not get_entry(name).attested:
                print(f"{name}: sha256 {sha256_file(Path(path))} (not verified: no public record to compare with)")
        except UnverifiedError as exc:
            console.error(f"{worded(exc)}: add --trust-unverified to download it anyway", exc)
            failed.append(name)
        except HATError as exc:
            console.error(worded(exc), exc)
            failed.append(name)
    if failed:
        console.error(f"{len(failed)} of {len(names)} failed: {', '.join(failed)}")
        return EXIT_FAILED
    return EXIT_OK

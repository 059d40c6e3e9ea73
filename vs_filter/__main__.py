"""``python -m vs_filter install|uninstall [--target DIR]``: put the hat shim where VapourSynth autoloads it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import BuildError, default_plugin_dir, install, uninstall


def main(argv: list[str] | None = None) -> int:
    """Command line entry; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m vs_filter",
        description="Build and install the native shim that makes core.hat.Upscale exist in VapourSynth.",
    )
    parser.add_argument("command", choices=["install", "uninstall"])
    parser.add_argument(
        "--target",
        type=Path,
        default=None,
        help=f"plugin folder (default: VapourSynth's autoload folder, {default_plugin_dir()})",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            path = install(args.target)
            print(f"installed {path}")
        elif uninstall(args.target):
            print("removed the hat shim")
        else:
            print("the hat shim was not installed")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

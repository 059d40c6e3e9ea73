"""Rehearse the GPU check's first run on this machine, offline: what breaks without the network breaks here.

    python -m bench.gpu_rehearsal OUTDIR [--steps env,shim,pytest,...] [--quick]

It builds what the GPU machine starts with: a fresh virtual environment that sees only the packages of the
machine's image (``gpu_wheels.GPU_MACHINE``; linked from this environment, torch included) and none of the
project's other dependencies; then runs ``bench/gpu_check.sh OUTDIR --device cpu`` with that Python exactly as the
device call does (the carried ``.whl/`` installed with ``pip --no-index`` into a target folder), with pip's
configuration and every proxy pointing nowhere, so no package can come from the network or a local index.
``bench/gpu_wheels.py`` (``make setup`` runs it) must have filled ``.whl/`` first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from importlib.metadata import distributions
from pathlib import Path

from .gpu_wheels import DEST, GPU_MACHINE, normalise

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.sh"
NOWHERE = "http://127.0.0.1:9"  # the discard port: any connection attempt fails at once


def link_image(site: Path, target: Path) -> list[str]:
    """Link into ``target`` the distributions of ``site`` that the GPU machine's image holds; their names."""
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for dist in distributions(path=[str(site)]):
        name = normalise(dist.metadata["Name"] or "")
        if name not in GPU_MACHINE:
            continue
        names.append(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = site / top
            if top.endswith(".pth") or top == "__pycache__" or not source.exists() or (target / top).exists():
                continue
            (target / top).symlink_to(source)
    return sorted(names)


def image_python(folder: Path) -> Path:
    """A fresh virtual environment whose only packages are the image's (linked through a .pth file)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    link_image(Path(sysconfig.get_paths()["purelib"]), folder / "image")
    (venv_site / "gpu-image.pth").write_text(f"{folder / 'image'}\n", encoding="utf-8")
    return python


def offline_env(folder: Path, python: Path) -> dict[str, str]:
    """The environment of the device call: no network, no pip configuration or index, nothing of this venv."""
    env = {
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(folder / "home"),
        "PYTHON": str(python),
        "HAT_CHECK_SITE": str(folder / "site"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONNOUSERSITE": "1",
        "HAT_PLUGIN_CACHE": str(folder / "cache"),
        "LANG": "C.UTF-8",
    }
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env[proxy] = NOWHERE
    return env


def rehearse(outdir: Path, steps: str | None = None, quick: bool = False, timeout: float = 900) -> int:
    """Run the check as the device would; its exit status (1 also when ``.whl/`` is empty)."""
    if not list(DEST.glob("*.whl")):
        print(f"no wheels in {DEST}: run python bench/gpu_wheels.py (make setup does) first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hat-gpu-rehearsal-") as tmp:
        folder = Path(tmp)
        python = image_python(folder)
        argv = ["bash", str(SCRIPT), str(outdir), "--device", "cpu"]
        argv += (["--steps", steps] if steps else []) + (["--quick"] if quick else [])
        return subprocess.run(argv, cwd=REPO, env=offline_env(folder, python), timeout=timeout, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--steps", help="comma-separated steps of the check (default: all)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    return rehearse(args.outdir.resolve(), args.steps, args.quick)


if __name__ == "__main__":
    sys.exit(main())

"""Download into ``.whl/`` exactly the wheels the GPU machine lacks for ``bench/gpu_check.sh``: run it here, then
carry ``.whl`` with the device call (docs/benchmarks.md, "GPU check").

    python bench/gpu_wheels.py            # download (one version of each, the one installed here), check the size
    python bench/gpu_wheels.py --list     # only say what would be downloaded

What the check imports: the product's runtime dependencies, the ``vs`` and ``bench`` extras (VapourSynth, spandrel)
and pytest with pytest-timeout; minus what the GPU machine's image already holds (``GPU_MACHINE``, the package list
of the device tool's KINDS.md as read on 2026-11-17), plus whatever the downloaded wheels require that the image
lacks. Each wheel is pinned to the version installed in this environment (the one the project is tested with) and
fetched for CPython 3.12 on x86-64 Linux, the GPU machine's Python.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
DEST = REPO / ".whl"
TREE_LIMIT = 64 << 20  # the device tool sends at most this much: the tracked tree plus the carried wheels
CHECK_EXTRAS = ("vs", "bench")
CHECK_TOOLS = ("pytest", "pytest-timeout")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
PLATFORMS += ("manylinux1_x86_64",)

_GPU_MACHINE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
    nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
    nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
    opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
    portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
    pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
    python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision
    tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp"""
GPU_MACHINE = frozenset(_GPU_MACHINE_LIST.split())


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(lines: list[str]) -> list[str]:
    """Names of the requirements that apply on the GPU machine (no extras-only ones)."""
    names = []
    env = {"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    for line in lines:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            names.append(normalise(req.name))
    return names


def needed_by_the_check(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The distributions the GPU check imports, by the project's own declarations."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in CHECK_EXTRAS:
        lines += project["optional-dependencies"][extra]
    return sorted(set(_requirement_names(lines)) | set(CHECK_TOOLS))


def missing_on_gpu_machine(names: list[str]) -> list[str]:
    return sorted(n for n in names if normalise(n) not in GPU_MACHINE)


def installed_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        raise SystemExit(f"{name} is not installed here, so its tested version is unknown: install it first") from None


def download(name: str, pinned: str, dest: Path) -> Path:
    """The wheel of ``name==pinned`` for CPython 3.12 on x86-64 Linux, in ``dest`` (other versions removed)."""
    for old in dest.glob(f"{name.replace('-', '_')}-*.whl"):
        if not old.name.startswith(f"{name.replace('-', '_')}-{pinned}-"):
            old.unlink()
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    argv += ["--python-version", "3.12", "--implementation", "cp", "--dest", str(dest)]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    subprocess.run([*argv, f"{name}=={pinned}"], check=True)
    found = [p for p in dest.glob("*.whl") if normalise(p.name.split("-")[0]) == name]
    if len(found) != 1:
        raise SystemExit(f"expected one wheel of {name} in {dest}, found {[p.name for p in found]}")
    return found[0]


def wheel_requires(wheel: Path) -> list[str]:
    """The wheel's own requirements (Requires-Dist without extras), normalised."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8")
    return _requirement_names(
        [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    )


def tracked_size() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def ensure_ignored(dest: Path) -> None:
    """The device tool carries only ignored folders named in ``carry``: make sure git ignores ``dest``."""
    probe = f"{dest.relative_to(REPO).as_posix()}/probe.whl"
    if subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO, check=False).returncode != 0:
        exclude = Path(
            subprocess.run(
                ["git", "rev-parse", "--git-path", "info/exclude"], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        with (REPO / exclude).open("a", encoding="utf-8") as f:
            f.write(f"/{dest.relative_to(REPO).as_posix()}/\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/gpu_wheels.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print what is missing there, download nothing")
    parser.add_argument("--dest", type=Path, default=DEST)
    args = parser.parse_args(argv)
    todo = missing_on_gpu_machine(needed_by_the_check())
    if args.list:
        print("\n".join(f"{n}=={installed_version(n)}" for n in todo))
        return 0
    args.dest.mkdir(exist_ok=True)
    ensure_ignored(args.dest.resolve())
    done: dict[str, Path] = {}
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        done[name] = download(name, installed_version(name), args.dest)
        todo += [n for n in missing_on_gpu_machine(wheel_requires(done[name])) if n not in done]
    for extra in set(args.dest.glob("*.whl")) - set(done.values()):
        extra.unlink()  # a wheel from an earlier run that is no longer needed: two versions would stop the install
    wheels = sum(p.stat().st_size for p in done.values())
    tree = tracked_size()
    for path in sorted(done.values()):
        print(f"{path.stat().st_size / 2**20:7.2f} MiB  {path.name}")
    print(
        f"{wheels / 2**20:7.2f} MiB in {len(done)} wheels; with the tracked tree ({tree / 2**20:.1f} MiB): "
        f"{(wheels + tree) / 2**20:.1f} of the {TREE_LIMIT / 2**20:.0f} MiB a device call may carry"
    )
    if wheels + tree > TREE_LIMIT:
        print("too large for one device call: carry fewer wheels", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

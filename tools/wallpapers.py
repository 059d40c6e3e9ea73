"""Real photographs from Debian's wallpaper packages (bookworm, pinned versions), checked by sha256, split once.

Run ``python -m tools.wallpapers`` on a Debian or Ubuntu machine (it runs ``apt-get download`` and ``dpkg-deb``)
to fill ``build/sr-data/train-debian`` (30 photographs, scaled with Lanczos so the longer side is at most 1600 px:
wallpapers are large, soft JPEGs, and halving them gives denser, cleaner detail per pixel),
``build/sr-data/train-debian-full`` (the same 30 at full resolution, the centred crop of at most 1600 x 1600 px:
the soft pixels photographs have as they are, like the held-out crops) and ``build/sr-data/heldout-debian`` (the
centred 384 x 384 crop of 8 other photographs at full resolution, never trained on). Licences per file:
``tools/README.md``. ``python -m tools.data`` makes the other training photographs.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

__all__ = ["HELDOUT_CROP", "PACKAGES", "SOURCES", "TRAIN_FULL_CROP", "TRAIN_LONG_SIDE", "fetch"]

DEFAULT_DIR = Path("build/sr-data")
PACKAGES = {
    "plasma": ("plasma-workspace-wallpapers=4:5.27.5-2", "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"),
    "mate": ("mate-backgrounds=1.26.0-1", "usr/share/backgrounds/mate/nature/{}.jpg"),
    "lomiri16": ("lomiri-wallpapers-16.04=20.04.0-2", "usr/share/backgrounds/{}.jpg"),
    "lomiri20": ("lomiri-wallpapers-20.04=20.04.0-2", "usr/share/backgrounds/{}.jpg"),
}
# (package key, name in it, sha256 of the file, split)
SOURCES: list[tuple[str, str, str, str]] = [
    ("plasma", "EveningGlow", "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a", "heldout"),
    ("plasma", "FallenLeaf", "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de", "heldout"),
    ("mate", "LadyBird", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d", "heldout"),
    ("mate", "Storm", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957", "heldout"),
    (
        "lomiri16",
        "picosdeeuropa_by_Aitzol_Berasategi",
        "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
        "heldout",
    ),
    (
        "lomiri16",
        "friends_by_Aitzol_Berasategi",
        "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
        "heldout",
    ),
    ("lomiri16", "Dragonfly_by_Bolly", "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3", "heldout"),
    (
        "lomiri20",
        "Kleiber_by_Lukas_Baubkus",
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
        "heldout",
    ),
    ("plasma", "BytheWater", "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f", "train"),
    ("plasma", "ColdRipple", "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f", "train"),
    ("plasma", "ColorfulCups", "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d", "train"),
    ("plasma", "DarkestHour", "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce", "train"),
    ("plasma", "Grey", "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed", "train"),
    ("plasma", "Kite", "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8", "train"),
    ("plasma", "OneStandsOut", "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd", "train"),
    ("plasma", "Path", "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8", "train"),
    ("plasma", "summer_1am", "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8", "train"),
    ("mate", "Aqua", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce", "train"),
    ("mate", "Blinds", "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600", "train"),
    ("mate", "Dune", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91", "train"),
    ("mate", "FreshFlower", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e", "train"),
    ("mate", "Garden", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78", "train"),
    ("mate", "GreenMeadow", "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832", "train"),
    ("mate", "RainDrops", "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16", "train"),
    ("mate", "TwoWings", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb", "train"),
    ("mate", "Wood", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07", "train"),
    ("mate", "YellowFlower", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306", "train"),
    (
        "lomiri16",
        "Bridge_by_Sander_Klootwijk",
        "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
        "train",
    ),
    (
        "lomiri16",
        "Picture_0B_by_freespace",
        "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
        "train",
    ),
    (
        "lomiri16",
        "Picture_1A_by_freespace",
        "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
        "train",
    ),
    ("lomiri16", "Wine_by_Jakkub_Mede", "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74", "train"),
    (
        "lomiri16",
        "aitzgorri_by_Aitzol_Berasategi",
        "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
        "train",
    ),
    ("lomiri16", "free_by_Peter_Nerlich", "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373", "train"),
    (
        "lomiri16",
        "greentock_by_Peter_Nerlich",
        "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
        "train",
    ),
    (
        "lomiri16",
        "life_by_Aitzol_Berasategi",
        "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
        "train",
    ),
    (
        "lomiri16",
        "seeding_by_Clements_Engelhardt",
        "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
        "train",
    ),
    (
        "lomiri16",
        "sunset_by_Aitzol_Berasategi",
        "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
        "train",
    ),
    ("lomiri20", "Infinite-Sea_by_Aury88", "9319dfb3651833881339a8d9b769b99efaf474969e6cd58e427eb2524aca8e8a", "train"),
]
TRAIN_LONG_SIDE = 1600
TRAIN_FULL_CROP = 1600
HELDOUT_CROP = 384


class FetchError(Exception):
    """A package could not be fetched or a file does not have its pinned sha256."""


def _extract(packages: list[str], into: Path) -> None:
    """``apt-get download`` the pinned packages into ``into`` and unpack each into a folder of its own."""
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=into, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise FetchError(
            f"apt-get download failed (a Debian/Ubuntu machine with bookworm sources?): {detail}"
        ) from None
    for deb in sorted(into.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into / deb.stem)], check=True)


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The centred crop of at most ``size`` x ``size`` pixels."""
    w, h = image.size
    cw, ch = min(w, size), min(h, size)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _write(image: Image.Image, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / f"{name}.png")


def _save(image: Image.Image, split: str, name: str, out: Path) -> None:
    if split == "heldout":
        _write(_centre_crop(image, HELDOUT_CROP), out / "heldout-debian", name)
        return
    _write(_centre_crop(image, TRAIN_FULL_CROP), out / "train-debian-full", name)
    factor = max(image.size) / TRAIN_LONG_SIDE
    if factor > 1:
        image = image.resize((round(image.width / factor), round(image.height / factor)), Image.Resampling.LANCZOS)
    _write(image, out / "train-debian", name)


def fetch(out: Path = DEFAULT_DIR) -> dict[str, int]:
    """Fill ``out/train-debian``, ``out/train-debian-full`` and ``out/heldout-debian``; returns the count per
    split."""
    counts = {"train": 0, "heldout": 0}
    with tempfile.TemporaryDirectory(prefix="hat-wallpapers-") as tmp:
        work = Path(tmp)
        _extract([spec for spec, _ in PACKAGES.values()], work)
        roots = {
            key: next(p for p in work.glob(spec.split("=")[0] + "_*") if p.is_dir())
            for key, (spec, _) in PACKAGES.items()
        }
        for key, name, sha, split in SOURCES:
            path = roots[key] / PACKAGES[key][1].format(name)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != sha:
                raise FetchError(f"{path.name} from {PACKAGES[key][0]}: sha256 {digest}, pinned {sha}")
            with Image.open(path) as image:
                _save(image.convert("RGB"), split, name, out)
            counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.wallpapers", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"data folder (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        counts = fetch(args.out)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"train-debian and train-debian-full: {counts['train']} images each, "
        f"heldout-debian: {counts['heldout']} crops in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

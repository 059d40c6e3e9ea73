"""The shipped weights manifest, its validation rules, model lookup, and the ``models`` command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hat_plugin import PRESETS, weights
from hat_plugin.cli import models as commands
from hat_plugin.cli.wording import worded as cli_worded
from hat_plugin.errors import ModelNotFoundError, UnknownModelError
from hat_plugin.weights import api
from hat_plugin.weights.manifest import PACKAGE_MANIFEST, ManifestError, load_manifest, validate_manifest

REPO = Path(__file__).resolve().parents[1]

# The official files (docs: ../shared/docs/hat.md section 3.2), transcribed independently of the manifest:
# name -> (sha256, size in bytes or None where unknown).
OFFICIAL = {
    "HAT-S_SRx2": ("3e249a901c2aed6b82548875e21847ef6c015a40c814237a7a0abb10c69d5ddf", 79_906_461),
    "HAT-S_SRx3": ("3733345caeb2b6cb0a7514d634b143f318e2441faf32316195a47e4cda67669e", None),
    "HAT-S_SRx4": ("a92f81bd2c0c1aaa371a6e4d6cac69e749fde2e36196885ee47a4a3667542c9a", 81_089_561),
    "HAT_SRx2": ("35e9409849016ab2bfc0c549639ea4f1d4d5b2bdd75f856a925e124dd05670d0", 84_546_053),
    "HAT_SRx3": ("453c90b94d494d041c8bff2d222987af311f07b4a09b4dafbd9ab6492f15206c", 85_284_613),
    "HAT_SRx4": ("02dabea478aa5902a7170ad89350124e691bd89c91356f24b3267022622dc030", 85_137_601),
    "HAT_SRx2_ImageNet-pretrain": ("82ebd911263bcc886fbef46b30cf97b92a932a27a3cba30163d4577afb09b9d7", None),
    "HAT_SRx3_ImageNet-pretrain": ("8469db903d464497f94419587054c9e83dff994edc409d563ab8f5a503767be8", None),
    "HAT_SRx4_ImageNet-pretrain": ("4ee053c42461187846dc0e93aa5abd34591c0725a8e044a59000e92ee215e833", 85_137_601),
    "HAT-L_SRx2_ImageNet-pretrain": ("2818c7ca8d72ec4cc5f31c93203d55252a662dd35cda34ce1a69661f97dcd38f", None),
    "HAT-L_SRx3_ImageNet-pretrain": ("78af181bedf1e805fd7517d3738bc5824f7ebdc477fc9f757b708bcf49ad4e3d", None),
    "HAT-L_SRx4_ImageNet-pretrain": ("5992bd38522f2b8faf11ea4bd8ee08de92465bb66892166576999afc36d60043", 165_774_123),
    "Real_HAT_GAN_SRx4": ("f5b1e3bbbb05147ca2beefcc715279cb647d7976cbda67d62ea7e6e20d5ffcc7", 170_277_017),
    "Real_HAT_GAN_SRx4_sharper": ("5800b67136006eb8cab3b4ed7c8d73b6a195bb18e6cc709b674f9aa069c00271", 170_277_017),
}


@pytest.fixture
def shipped(monkeypatch, tmp_path):
    """The shipped manifest in use, with an empty temporary cache."""
    monkeypatch.delenv("HAT_PLUGIN_MANIFEST", raising=False)
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    return json.loads(PACKAGE_MANIFEST.read_text(encoding="utf-8"))


def test_repository_and_package_copies_are_identical():
    root = REPO / "weights_manifest.json"
    assert PACKAGE_MANIFEST == REPO / "hat_plugin" / "weights_manifest.json"
    assert root.read_bytes() == PACKAGE_MANIFEST.read_bytes(), (
        "copy weights_manifest.json to hat_plugin/weights_manifest.json: the package ships that copy"
    )


def test_shipped_manifest_is_valid(shipped):
    assert validate_manifest(shipped) == []
    assert len(load_manifest(PACKAGE_MANIFEST).entries) == len(shipped["models"])


def test_every_official_model_is_listed_with_its_sha256_and_size(shipped):
    official = {e.name: e for e in weights.list_models() if e.origin == "official"}
    assert {name: (e.sha256, e.size) for name, e in official.items()} == OFFICIAL
    for name, entry in official.items():
        assert entry.scale == PRESETS[name].upscale, name
        assert entry.variant in {"HAT-S", "HAT", "HAT-L"}
        assert entry.filename == f"{name}.pth"
        assert entry.license == "Apache-2.0"
        assert entry.urls and all(url.startswith("https://") for url in entry.urls)
        drive = [i for i, url in enumerate(entry.urls) if "drive.usercontent.google.com" in url]
        assert drive in ([], [len(entry.urls) - 1]), f"{name}: a Google Drive URL may only come last"


# Public records of where each official file can be downloaded: the Google Drive ids from
# chaiNNer-org/spandrel tests/test_HAT.py and public install manifests; URLs no record shows (the OpenModelDB
# model-hub "hat" release, bhcao/facexlib assets under HAT-S names that project does not use) must not come back.
DRIVE_IDS = {
    "HAT-S_SRx2": "1Y7-3IgWfIAui9BMQIsFT9CzZXVMlx__e",
    "HAT-S_SRx3": "1yBoJkvvvQ5GcPxV8cF0z6KGgOF5pMclX",
    "HAT-S_SRx4": "1YvU9PF1XqlP8TVzH7P0bg-YlfP1TKDPC",
    "HAT_SRx3": "1dWG4X_6VUSi1hhIwX0zEwddWI9M0tFmI",
    "HAT_SRx4": "1pdhaO1fJq3tgSqDIbymdDiGxu4S0nqVq",
    "HAT-L_SRx4_ImageNet-pretrain": "1uefIctjoNE3Tg6GTzelesTTshVogQdUf",
    "Real_HAT_GAN_SRx4": "1Ma12vCWT27P9M99-s2RXnynKN-OQsBrv",
}
UNATTESTED = ("github.com/OpenModelDB/model-hub/", "facexlib/releases/download/v0.3.1/HAT-S_")
CCRESTORATION = "https://github.com/TensoRaws/ccrestoration/releases/download/model_zoo/"


def test_every_official_entry_says_where_its_hash_is_confirmed_and_uses_attested_urls(shipped):
    for entry in weights.list_models():
        assert entry.source, f"{entry.name}: no 'source' note"
        if entry.origin != "official":
            continue
        assert "ccrestoration" in entry.source, entry.name  # the one record that covers all 14 hashes
        assert any(url.startswith(CCRESTORATION) for url in entry.urls), entry.name
        assert not [url for url in entry.urls if any(bad in url for bad in UNATTESTED)], entry.name
        drive = [url for url in entry.urls if "drive.usercontent.google.com" in url]
        expected = DRIVE_IDS.get(entry.name)
        assert drive == (
            [f"https://drive.usercontent.google.com/download?id={expected}&export=download&confirm=t"]
            if expected
            else []
        ), entry.name
        if expected:
            assert expected in entry.source or "spandrel" in entry.source, entry.name


# The community HATs and what OpenModelDB's public model data (data/models/*.json) states for each file.
COMMUNITY = {
    "4xLexicaHAT": ("f3441f602f221ae111253b72ccb561e9f7a1a3dc84ab27923edea0a9581ea1dd", 85149569, "CC-BY-4.0"),
    "4xNomos8kSCHAT-S": ("e1400e16a10bf4dbbe003651bf76f9f9c4e083f0e5c93e1c3effe2fa91b41168", 81096929, "CC-BY-4.0"),
    "4xNomos8kSCHAT-L": ("9e7726ba191fdf05b87ea8585d78164b6e96e2ee04fdbb3285c3efa37db4b5b0", 331564661, "CC-BY-4.0"),
    "4xNomos8kHAT-L_otf": ("ff7413cf954fe2812391da47c8365dcff0a9437d0581fbd1a3f21d37f4c43773", 165797931, "CC-BY-4.0"),
    "2xStarSample_V2.0_HQ": (
        "77115df5bb80600a32a762e321e26f2a0114142d00ed060a7e88a5be269d5b05",
        164708980,
        "CC-BY-NC-SA-4.0",
    ),
}
UNATTESTED_COMMUNITY = {"4xNomos8kHAT-L_bokeh_jpg": 4, "1xDeJPG_HAT": 1}


def test_community_models_carry_their_public_hashes_or_say_unattested(shipped):
    community = {e.name: e for e in weights.list_models() if e.origin == "community"}
    assert set(community) == set(COMMUNITY) | set(UNATTESTED_COMMUNITY)
    for name, (sha, size, licence) in COMMUNITY.items():
        entry = community[name]
        assert (entry.sha256, entry.size, entry.license) == (sha, size, licence), name
        assert "OpenModelDB/open-model-database data/models/" in (entry.source or ""), name
        assert entry.urls and all(url.startswith("https://") for url in entry.urls), name
    for name, scale in UNATTESTED_COMMUNITY.items():
        entry = community[name]
        assert entry.sha256 is None and not entry.attested and entry.urls == () and entry.scale == scale
        assert "github.com/Phhofm/models/releases/tag/" in (entry.source or "")
    for scale in (2, 4):
        assert weights.default_model(scale)[0].origin in ("official", "project"), "never a community default"


def test_models_json_listing_carries_the_source_note(shipped, capsys):
    assert commands.run_models(["--json"]) == 0
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert "ccrestoration" in listing["HAT-S_SRx4"]["source"]


def test_bundled_entries_match_their_files(shipped):
    bundled = [e for e in weights.list_models() if e.bundled]
    assert {e.name for e in bundled} == {"hat-tiny-x2", "hat-tiny-x3", "hat-tiny-x4"}
    for entry in bundled:
        path = api.BUNDLED_DIR / entry.filename
        assert entry.urls == ()
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), f"update sha256 of {entry.name}"
        assert entry.size == path.stat().st_size, f"update size of {entry.name}"


GOOD = {
    "name": "m",
    "variant": "HAT",
    "scale": 4,
    "description": "a model",
    "filename": "m.pth",
    "size": 10,
    "sha256": "0" * 64,
    "urls": ["https://example.com/m.pth"],
    "license": "MIT",
}

BROKEN = {  # id: (change to GOOD, expected problem)
    "sha-short": ({"sha256": "abc"}, "64 lowercase hex"),
    "sha-upper": ({"sha256": "A" * 64}, "64 lowercase hex"),
    "sha-null": ({"sha256": None}, "64 lowercase hex"),
    "sha-null-bundled": ({"sha256": None, "bundled": True, "urls": []}, "64 lowercase hex"),
    "http-url": ({"urls": ["http://example.com/m.pth"]}, "https only"),
    "file-url": ({"urls": ["file:///tmp/m.pth"]}, "https only"),
    "relative-url": ({"urls": ["/m.pth"]}, "is refused"),
    "no-host": ({"urls": ["https:///m.pth"]}, "not an absolute URL"),
    "no-url": ({"urls": []}, "at least one URL"),
    "path-in-filename": ({"filename": "../m.pth"}, "plain .pth or .safetensors"),
    "pickle-filename": ({"filename": "m.pkl"}, "plain .pth or .safetensors"),
    "scale-bool": ({"scale": True}, "'scale' must be"),
    "size-zero": ({"size": 0}, "'size' must be"),
    "two-line-description": ({"description": "a\nb"}, "single line"),
    "typo-key": ({"sha265": "x"}, "unknown key 'sha265'"),
    "bundled-with-url": ({"bundled": True}, "has no URLs"),
    "source-empty": ({"source": " "}, "'source' must be a non-empty single line"),
    "source-two-lines": ({"source": "a\nb"}, "'source' must be a non-empty single line"),
    "source-not-text": ({"source": ["ccrestoration"]}, "'source' must be a non-empty single line"),
    "source-too-long": ({"source": "x" * 2001}, "at most 2000 characters"),
    "name-with-space": ({"name": "my model"}, "'name' must be"),
    "mean-word": ({"rgb_mean": "grey"}, "'rgb_mean' must be"),
    "mean-list": ({"rgb_mean": [0.5, 0.5, 0.5]}, "'rgb_mean' must be"),
    "origin-unknown": ({"origin": "alien"}, "'origin' must be"),
    "origin-project-not-bundled": ({"origin": "project"}, "'origin' must be"),
    "path-not-user": ({"path": "/models/m.pth", "urls": []}, "'path' is an absolute file path"),
    "path-relative": ({"path": "m.pth", "urls": [], "origin": "user"}, "'path' is an absolute file path"),
    "path-and-url": ({"path": "/models/m.pth", "origin": "user"}, "a 'path' and no URLs"),
    "sha-null-user": ({"sha256": None, "origin": "user"}, "64 lowercase hex"),
}


@pytest.mark.parametrize(("change", "problem"), BROKEN.values(), ids=BROKEN)
def test_validation_names_the_problem(change, problem):
    problems = validate_manifest({"format": 1, "models": [GOOD | change]})
    assert any(problem in p for p in problems), problems


def test_validation_accepts_community_unattested_and_user_file_models():
    unattested = GOOD | {"sha256": None, "origin": "community", "urls": [], "size": None, "rgb_mean": "0.5"}
    mine = GOOD | {"name": "u", "filename": "u.pth", "origin": "user", "urls": [], "path": "/models/u.pth"}
    assert validate_manifest({"format": 1, "models": [unattested, mine]}) == []


def test_the_user_manifest_is_merged_over_the_shipped_one(shipped, tmp_path, monkeypatch):
    own = tmp_path / "models.json"
    monkeypatch.setenv("HAT_PLUGIN_USER_MANIFEST", str(own))
    mine = GOOD | {"name": "hat-tiny-x2", "origin": "user", "urls": [], "path": str(tmp_path / "x2.pth")}
    own.write_text(json.dumps({"format": 1, "models": [mine]}), encoding="utf-8")
    names = [e.name for e in weights.list_models()]
    assert names.count("hat-tiny-x2") == 1 and weights.get_entry("hat-tiny-x2").origin == "user"
    own.write_text(json.dumps({"format": 1, "models": [GOOD]}), encoding="utf-8")  # not marked as the user's
    with pytest.raises(ManifestError, match="'origin': 'user'"):
        weights.list_models()


def test_validation_accepts_loopback_http_and_bundled_models():
    local = GOOD | {"urls": ["http://127.0.0.1:8000/m.pth", "http://localhost/m.pth", "http://[::1]/m.pth"]}
    tiny = GOOD | {"name": "t", "filename": "t.safetensors", "size": None, "urls": [], "bundled": True}
    assert validate_manifest({"format": 1, "models": [local, tiny]}) == []


def test_validation_finds_repeated_names_and_files_ignoring_case():
    twin = GOOD | {"name": "M", "filename": "other.pth"}
    same_file = GOOD | {"name": "n", "filename": "M.PTH"}
    problems = validate_manifest({"format": 1, "models": [GOOD, twin, same_file]})
    assert any("name 'M' repeats 'm'" in p for p in problems)
    assert any("filename 'M.PTH' repeats 'm.pth'" in p for p in problems)
    assert validate_manifest([]) == ["the top level must be an object with a 'models' list"]
    assert validate_manifest({"format": 2, "models": []}) == ["'format' must be 1"]


def test_load_manifest_errors_name_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="bad.json is not valid JSON"):
        load_manifest(bad)
    bad.write_text(json.dumps({"format": 1, "models": [GOOD, GOOD | {"sha256": "x"}]}))
    with pytest.raises(ManifestError, match="(?s)is invalid:.*64 lowercase hex.*name 'm' repeats 'm'"):
        load_manifest(bad)
    monkeypatch.setenv("HAT_PLUGIN_MANIFEST", str(tmp_path / "missing.json"))
    with pytest.raises(ManifestError, match="cannot read the weights manifest .*missing.json"):
        weights.list_models()


def test_get_entry_ignores_case_accepts_file_names_and_suggests(shipped):
    assert weights.get_entry("hat-s_srx4").name == "HAT-S_SRx4"
    assert weights.get_entry("Real_HAT_GAN_SRx4_sharper.pth").name == "Real_HAT_GAN_SRx4_sharper"
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'HAT-S_SRx5'\. Did you mean 'HAT-S_SRx"):
        weights.get_entry("HAT-S_SRx5")
    with pytest.raises(LookupError, match="Did you mean 'Real_HAT_GAN_SRx4'"):
        weights.get_entry("real-hat-gan-srx4")
    with pytest.raises(ModelNotFoundError) as caught:
        weights.get_entry("zzzz")
    assert "Did you mean" not in str(caught.value)
    assert isinstance(caught.value, UnknownModelError)  # the CLI adds where the known models are listed
    assert cli_worded(caught.value).endswith("'hat-upscale models' lists the known ones.")


def test_models_command_lists_every_model(shipped, capsys):
    assert commands.run_models([]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in OFFICIAL:
        assert name in lines
    assert "x4" in lines["HAT-S_SRx4"] and "81.1 MB" in lines["HAT-S_SRx4"] and " no " in lines["HAT-S_SRx4"]
    assert "?" in lines["HAT-S_SRx3"]  # size unknown
    assert " missing " in lines["hat-tiny-x2"] or " bundled " in lines["hat-tiny-x2"]

    assert commands.run_models(["--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listing] == [e.name for e in weights.list_models()]
    assert all(m["cached"] is False for m in listing if not m["bundled"])


def test_download_command_needs_names_or_all(shipped, capsys):
    assert commands.run_download([]) == 2
    assert "download: error: name one or more models, or use --all" in capsys.readouterr().err

"""What the app says about models, without Qt: friendly names derived from the manifest, which models are ready and
the engine's default per scale (checked as a worker would), and the one-sentence "not available" message."""

from __future__ import annotations

import pytest

from gui.models import Availability, check_availability, friendly_name, model_status, unavailable_sentence
from hat_plugin import weights
from hat_plugin.errors import DownloadError, ModelNotFoundError
from hat_plugin.weights import ModelEntry


def entry(name: str, variant: str, scale: int, size: int | None, bundled: bool = False) -> ModelEntry:
    return ModelEntry(name, variant, scale, "d", f"{name}.pth", size, "0" * 64, (), "Apache-2.0", bundled)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (entry("HAT-S_SRx4", "HAT-S", 4, 81_089_561), "HAT-S ×4 (81 MB)"),
        (entry("HAT-S_SRx2", "HAT-S", 2, None), "HAT-S ×2 (size unknown)"),
        (entry("HAT-L_SRx4_ImageNet-pretrain", "HAT-L", 4, 165_774_123), "HAT-L ×4 ImageNet pretrain (166 MB)"),
        (entry("Real_HAT_GAN_SRx4_sharper", "HAT", 4, 170_277_017), "HAT ×4 Real GAN sharper (170 MB)"),
        (entry("hat-tiny-x2", "HAT-tiny", 2, 1_288_252, bundled=True), "HAT-tiny ×2 (1.3 MB)"),
    ],
)
def test_friendly_names_come_from_the_manifest_entry(model, expected):
    assert friendly_name(model) == expected
    assert friendly_name(model, size=False) == expected.rsplit(" (", 1)[0]


def test_every_manifest_model_has_a_distinct_friendly_name_with_scale_and_size():
    models = weights.list_models()
    names = [friendly_name(m) for m in models]
    assert len(set(names)) == len(models)
    for model, name in zip(models, names, strict=True):
        assert "_" not in name
        if model.origin == "community":  # their own names, which start with the scale; a size when one is known
            assert name.startswith(f"{model.scale}x") and name.endswith(")") == (model.size is not None)
        else:
            assert f"×{model.scale}" in name and name.endswith(")")


def test_status_words_call_bundled_models_bundled():
    tiny = entry("hat-tiny-x2", "HAT-tiny", 2, 1, bundled=True)
    big = entry("HAT_SRx2", "HAT", 2, 1)
    assert [model_status(tiny, r) for r in (True, False, None)] == ["bundled", "missing", "checking"]
    assert [model_status(big, r) for r in (True, False)] == ["downloaded", "not downloaded"]


def test_first_launch_offline_with_an_empty_cache(tmp_path, monkeypatch):
    """What the worker finds on a first start with no network: the bundled models are ready and are the
    engine's default for their scales (x2, x3, x4: no scale is a dead end offline); the others are not; x1 has only
    a community model, which is never a default."""
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    found = check_availability()
    assert found.offline and found.problem == ""
    assert {name for name, ready in found.ready.items() if ready} == {"hat-tiny-x2", "hat-tiny-x3", "hat-tiny-x4"}
    for scale in (2, 3, 4):
        assert found.defaults[scale][0] == f"hat-tiny-x{scale}" and "works offline" in found.defaults[scale][1]
    assert found.default_scale == 4 and 1 not in found.defaults
    assert found.is_ready("HAT-S_SRx4") is False and Availability().is_ready("HAT-S_SRx4") is None


def test_a_broken_manifest_is_reported_not_raised(tmp_path, monkeypatch):
    (tmp_path / "m.json").write_text("{not json")
    monkeypatch.setenv("HAT_PLUGIN_MANIFEST", str(tmp_path / "m.json"))
    found = check_availability()
    assert found.ready == {} and "not valid JSON" in found.problem


def test_the_not_available_sentence_is_short_and_says_why():
    model = entry("HAT-S_SRx2", "HAT-S", 2, None)
    offline = ModelNotFoundError("HAT-S_SRx2: it is not in the cache (...), and HAT_PLUGIN_OFFLINE is set, ...")
    assert unavailable_sentence(model, offline, offline=True) == (
        "HAT-S ×2 is not downloaded and offline mode is on (HAT_PLUGIN_OFFLINE)."
    )
    unreachable = DownloadError(
        "could not download HAT-S_SRx2.pth (sha256 0123...):\n"
        "  1. https://a.example/x.pth\n     -> cannot connect (Name or service not known)\n"
        "  2. https://b.example/x.pth\n     -> connecting timed out after 10 s\nCheck the network ..."
    )
    assert unavailable_sentence(model, unreachable, offline=False) == (
        "HAT-S ×2 is not downloaded and this computer is offline."
    )
    corrupt = DownloadError("could not download ...:\n  1. https://a.example/x.pth\n     -> wrong content: sha256 1")
    assert (
        unavailable_sentence(model, corrupt, offline=False) == "HAT-S ×2 is not downloaded and could not be downloaded."
    )


def test_the_offline_switch_is_public(monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    assert weights.is_offline()
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "0")
    assert not weights.is_offline()


def test_the_model_box_groups_and_names_without_qt():
    """The picker's Qt-free contents: ready models first, then the user's own, then downloadable ones (each by
    scale, empty groups left out), and a dropped file's name made unique whatever its case."""
    import subprocess
    import sys
    from dataclasses import replace
    from pathlib import Path

    from gui.model_list import DOWNLOAD_GROUP, READY_GROUP, YOURS_GROUP, model_groups, suggest_name

    tiny = entry("hat-tiny-x2", "HAT-tiny", 2, 1, bundled=True)
    big4, big2 = entry("HAT_SRx4", "HAT", 4, 1), entry("HAT_SRx2", "HAT", 2, 1)
    mine = replace(entry("my-hat", "HAT", 4, 1), origin="user")
    groups = model_groups([big4, mine, tiny, big2], lambda e: e.bundled or e.origin == "user")
    assert groups == [(READY_GROUP, [tiny]), (YOURS_GROUP, [mine]), (DOWNLOAD_GROUP, [big2, big4])]
    assert [title for title, _ in model_groups([big4], lambda e: True)] == [READY_GROUP]
    assert suggest_name(Path("/x/My HAT (v2).pth"), ["my_hat_v2"]) == "My_HAT_v2-2"
    assert suggest_name(Path("/x/....pth"), []) == "model"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gui.model_list; print('PyQt6' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert loaded.stdout.strip() == "False"

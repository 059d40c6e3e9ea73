"""Your own model by name: ``hat-upscale models add FILE|URL --name NAME`` records it in the user manifest (the
config folder, merged over the shipped manifest), and the CLI, the real VapourSynth filter and the app's model list
all find it; ``models remove`` forgets it; bad files and wrong hashes are refused with one line and nothing is
recorded. URLs come from the project's real HTTP test server; a hash no record states needs --trust-unverified."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch

from hat_plugin import load_model, weights
from hat_plugin.cli import EXIT_FAILED, EXIT_OK, main
from hat_plugin.errors import CheckpointError
from hat_plugin.images import Image as HatImage
from hat_plugin.images import read_image, write_image
from hat_plugin.user_models import add_model
from hat_plugin.weights import user_manifest_path

pytest_plugins = ["weights_server"]

BUNDLED_X2 = weights.local_path(weights.get_entry("hat-tiny-x2"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty config folder (the user manifest) and cache."""
    monkeypatch.delenv("HAT_PLUGIN_USER_MANIFEST")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HAT_PLUGIN_MANIFEST", raising=False)
    return tmp_path


@pytest.fixture
def weights_file(tmp_path):
    """A HAT checkpoint of the user's, outside the package."""
    path = tmp_path / "my weights" / "portrait-x2.safetensors"
    path.parent.mkdir()
    shutil.copy(BUNDLED_X2, path)
    return path


def _image(path) -> None:
    rng = np.random.default_rng(0)
    write_image(path, HatImage((rng.random((20, 24, 3)) * 255).astype(np.uint8)), overwrite=True)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_round_trip_add_use_list_remove(home, weights_file, tmp_path, capsys):
    assert user_manifest_path() == tmp_path / "config" / "hat-plugin" / "models.json", "the config folder"
    assert main(["models", "add", str(weights_file), "--name", "portrait", "--rgb-mean", "0.5"]) == EXIT_OK
    assert "added portrait: x2" in capsys.readouterr().out
    recorded = json.loads(user_manifest_path().read_text(encoding="utf-8"))["models"]
    assert [(m["name"], m["path"], m["rgb_mean"], m["origin"]) for m in recorded] == [
        ("portrait", str(weights_file), "0.5", "user")
    ]
    assert recorded[0]["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()

    assert main(["models", "--json"]) == EXIT_OK
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listing["portrait"]["cached"] and listing["portrait"]["license"] == "unknown (your model)"
    assert main(["models"]) == EXIT_OK
    table = capsys.readouterr().out
    assert "LICENSE" in table and "you, mean 0.5" in table and "CC-BY-4.0" in table and "HAT authors" in table

    _image(tmp_path / "in.png")
    code = main([str(tmp_path / "in.png"), "--model", "portrait", "--device", "cpu", "-o", str(tmp_path / "out.png")])
    assert code == EXIT_OK
    assert "model portrait: x2, RGB mean 0.5, on cpu" in capsys.readouterr().err
    assert read_image(tmp_path / "out.png").pixels.shape[:2] == (40, 48)

    assert main(["models", "remove", "portrait"]) == EXIT_OK
    assert weights_file.exists(), "a file added from disk stays where it is"
    capsys.readouterr()
    assert main([str(tmp_path / "in.png"), "--model", "portrait", "--device", "cpu", "--overwrite"]) == EXIT_FAILED
    assert "unknown model 'portrait'" in capsys.readouterr().err
    assert main(["models", "remove", "portrait"]) == EXIT_FAILED
    assert "no model of yours" in _one_line(capsys.readouterr().err)
    assert main(["models", "remove", "hat-tiny-x2"]) == EXIT_FAILED
    assert "ships with hat-plugin" in _one_line(capsys.readouterr().err)


def test_a_moved_or_changed_file_is_named_not_used(home, weights_file, capsys):
    add_model(weights_file, "portrait")
    with weights_file.open("r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    with pytest.raises(Exception, match="changed since the model was added"):
        weights.resolve("portrait")
    weights_file.unlink()
    with pytest.raises(Exception, match="is gone"):
        weights.resolve("portrait")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_text("just some notes\n"), "text, not weights"),
        (lambda p: torch.save({"note": "a dict of strings"}, p), "not a tensor"),
        (lambda p: torch.save({"fc.weight": torch.zeros(2, 2)}, p), "not a HAT checkpoint"),
        (lambda p: torch.save(shutil.Error("a pickled object"), p), "Python objects besides tensors"),
    ],
    ids=["text", "pickle-of-strings", "other-network", "pickled-object"],
)
def test_bad_files_are_refused_and_nothing_is_recorded(home, tmp_path, capsys, make, reason):
    bad = tmp_path / "bad.pth"
    make(bad)
    assert main(["models", "add", str(bad), "--name", "bad"]) == EXIT_FAILED
    line = _one_line(capsys.readouterr().err)
    assert reason in line and "not added" in line
    assert not user_manifest_path().exists()
    assert all(e.name != "bad" for e in weights.list_models())


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_path_that_is_no_regular_file_is_refused_in_the_shared_words(home, tmp_path, capsys, kind):
    """A folder or a pipe named as the weights: the one line every weights input gives (no hang on the pipe)."""
    path = tmp_path / "thing.pth"
    if kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    assert main(["models", "add", str(path), "--name", "thing"]) == EXIT_FAILED
    line = _one_line(capsys.readouterr().err)
    with pytest.raises(CheckpointError) as elsewhere:
        weights.resolve(str(path))
    assert str(elsewhere.value) in line and "a weights file (.pth or .safetensors)" in line
    assert not user_manifest_path().exists()


def test_wrong_hash_taken_name_and_bad_mean_are_refused(home, weights_file, capsys):
    assert main(["models", "add", str(weights_file), "--name", "p", "--sha256", "0" * 64]) == EXIT_FAILED
    assert "not the expected" in _one_line(capsys.readouterr().err)
    assert main(["models", "add", str(weights_file), "--name", "HAT-S_SRx4"]) == EXIT_FAILED
    assert "ships with hat-plugin" in _one_line(capsys.readouterr().err)
    assert main(["models", "add", str(weights_file), "--name", "p", "--rgb-mean", "grey"]) != EXIT_OK
    assert "not 'official'" in capsys.readouterr().err
    assert not user_manifest_path().exists()
    assert main(["models", "add", str(weights_file), "--name", "p"]) == EXIT_OK
    assert main(["models", "add", str(weights_file), "--name", "P"]) == EXIT_FAILED
    assert "already one of your models" in _one_line(capsys.readouterr().err)


def test_url_needs_a_hash_or_trust_and_is_verified(wenv, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HAT_PLUGIN_USER_MANIFEST", str(tmp_path / "config" / "models.json"))
    wenv.manifest.write_text(json.dumps({"format": 1, "models": []}), encoding="utf-8")
    data = BUNDLED_X2.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    url = wenv.server.add("/files/portrait.safetensors", data)

    assert main(["models", "add", url, "--name", "web"]) == EXIT_FAILED
    assert "--trust-unverified" in _one_line(capsys.readouterr().err)
    assert wenv.server.hits("/files/portrait.safetensors") == [] and not user_manifest_path().exists()

    assert main(["models", "add", url, "--name", "web", "--sha256", "1" * 64]) == EXIT_FAILED
    assert "wrong content" in capsys.readouterr().err
    assert not user_manifest_path().exists() and wenv.files() <= {".state/web.safetensors.lock"}

    assert main(["models", "add", url, "--name", "web", "--sha256", digest.upper()]) == EXIT_OK
    capsys.readouterr()
    wenv.models.append({"filename": "web.safetensors", "sha256": digest})  # for the fixture's clean-cache check
    assert weights.resolve("web") == wenv.cache / "web.safetensors"
    assert load_model("web").config.upscale == 2

    assert main(["models", "add", url, "--name", "trusted", "--trust-unverified"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"trusted: sha256 {digest} (not verified" in out
    assert json.loads(user_manifest_path().read_text())["models"][1]["sha256"] == digest
    assert main(["models", "remove", "trusted"]) == EXIT_OK
    assert not (wenv.cache / "trusted.safetensors").exists(), "a downloaded copy goes with the model"

    page = wenv.server.add("/files/page.pth", b"<!DOCTYPE html><html><body>Sign in</body></html>")
    assert main(["models", "add", page, "--name", "page", "--trust-unverified"]) == EXIT_FAILED
    assert "web page" in capsys.readouterr().err
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    not_hat = wenv.server.add("/files/other.pth", other.read_bytes())
    assert main(["models", "add", not_hat, "--name", "other", "--trust-unverified"]) == EXIT_FAILED
    assert "not a HAT checkpoint" in capsys.readouterr().err
    assert not (wenv.cache / "other.pth").exists()
    assert [m["name"] for m in json.loads(user_manifest_path().read_text())["models"]] == ["web"]


def test_download_of_an_unattested_model_needs_trust_and_prints_the_hash(wenv, capsys):
    data = BUNDLED_X2.read_bytes()
    url = wenv.server.add("/files/community.pth", data)
    entry = wenv.add_model("community", data, [url], known_size=False)
    entry.update(sha256=None, origin="community")
    wenv.put(entry)
    assert not weights.get_entry("community").attested
    assert main(["download", "community"]) == EXIT_FAILED
    assert "hash unattested" in capsys.readouterr().err and wenv.server.hits("/files/community.pth") == []
    assert main(["download", "community", "--trust-unverified", "-q"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"community: sha256 {hashlib.sha256(data).hexdigest()} (not verified" in out
    assert weights.is_cached("community")
    wenv.models[-1]["sha256"] = hashlib.sha256(data).hexdigest()  # what the fixture's clean-cache check compares


def test_shipped_community_entries_without_a_url_say_where_to_get_them(home, capsys):
    assert main(["download", "1xDeJPG_HAT", "--trust-unverified"]) == EXIT_FAILED
    line = capsys.readouterr().err.splitlines()[0]
    assert "no public record states a download URL or sha256" in line and "releases/tag/1xDeJPG" in line


def test_the_filter_finds_the_model_by_name_with_its_mean(home, weights_file):
    import vapoursynth as vs
    from vs_helpers import clip_from_arrays, frame_array, hat_core, image_frames

    add_model(weights_file, "portrait", rgb_mean="0.5")
    core = hat_core()
    frames = image_frames(1, 24, 16)
    out = core.hat.Upscale(clip_from_arrays(core, frames), model="portrait", device="cpu")
    got = frame_array(out.get_frame(0))
    half = load_model(weights_file, rgb_mean="0.5")
    from hat_plugin import Upscaler

    expected = Upscaler(half, device="cpu", precision="fp32").upscale(frames[0])
    assert np.allclose(got, np.moveaxis(expected, -1, 0), atol=1e-5)
    official = core.hat.Upscale(clip_from_arrays(core, frames), model="portrait", device="cpu", rgb_mean="official")
    assert not np.allclose(frame_array(official.get_frame(0)), got, atol=1e-3)
    with pytest.raises(vs.Error, match=r"rgb_mean='grey'"):
        core.hat.Upscale(clip_from_arrays(core, frames), model="portrait", rgb_mean="grey")


def test_the_app_lists_yours_and_adds_a_dropped_weights_file(qtbot, home, weights_file, tmp_path):
    from gui_helpers import make_window
    from PyQt6.QtCore import QMimeData, Qt, QUrl

    from gui.model_list import YOURS_GROUP

    window = make_window(qtbot, tmp_path)
    picker = window.panel.models
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(weights_file))])
    window.queueing.add_mime(mime)
    assert picker.error.isVisible() and "portrait-x2.safetensors: model weights" in picker.error.text.text()
    assert window.queue.items == [], "weights are not queued as images"
    button = next(b for b in picker.error.buttons if b.text() == "Add to my models")
    button.click()
    assert picker.shown_model == "portrait-x2" and not picker.automatic
    combo = picker.combo
    texts = [combo.itemText(r) for r in range(combo.count())]
    assert YOURS_GROUP in texts
    tooltip = combo.itemData(combo.findData("portrait-x2", Qt.ItemDataRole.UserRole), Qt.ItemDataRole.ToolTipRole)
    assert "licence unknown (your model)" in tooltip and "by you" in tooltip
    assert [e.name for e in weights.list_models() if e.origin == "user"] == ["portrait-x2"]


def test_the_app_runs_your_model_with_its_mean_and_the_chosen_one(qtbot, home, weights_file, tmp_path):
    from gui_helpers import make_window, run, write_png

    from hat_plugin import Upscaler

    add_model(weights_file, "portrait", rgb_mean="0.5")
    window = make_window(qtbot, tmp_path)
    picker = window.panel.models
    picker.select_model("portrait")
    pixels = write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    half = Upscaler(load_model(weights_file, rgb_mean="0.5"), device="cpu", precision="fp32").upscale(pixels)
    assert np.array_equal(read_image(tmp_path / "a_x2.png").pixels, half), "the mean recorded with the model"
    assert window.runs.tracker.model is not None and window.runs.tracker.model.mean == "0.5"

    picker.set_rgb_mean("official")
    assert window.panel.settings().rgb_mean == "official"
    (tmp_path / "a_x2.png").unlink()
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    official = Upscaler(load_model(weights_file, rgb_mean="official"), device="cpu", precision="fp32").upscale(pixels)
    assert not np.array_equal(half, official)
    assert np.array_equal(read_image(tmp_path / "a_x2.png").pixels, official), "the mean chosen in the app"
    assert window.runs.tracker.model is not None and window.runs.tracker.model.mean == "official"

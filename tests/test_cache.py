"""The weights cache: location, offline mode, mirror override, remembered hashes, damaged and bundled files."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import platformdirs
import pytest

from hat_plugin import weights
from hat_plugin.errors import CheckpointError, DownloadError, ModelNotFoundError
from hat_plugin.weights import api, cache

pytest_plugins = ["weights_server"]

SIZE = 200_000
DATA = random.Random(7).randbytes(SIZE)


def _flip_in_place(path: Path, later_by_ns: int) -> None:
    """Change bytes without changing the size or the inode; move the mtime by ``later_by_ns``."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(SIZE // 2)
        f.write(b"\x00" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + later_by_ns))


def test_default_cache_dir_is_the_platform_user_cache(monkeypatch):
    monkeypatch.delenv("HAT_PLUGIN_CACHE", raising=False)
    assert weights.cache_dir() == Path(platformdirs.user_cache_dir("hat-plugin"))


def test_cache_env_overrides_and_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HAT_PLUGIN_CACHE", "~/weights")
    assert weights.cache_dir() == tmp_path / "weights"


def test_offline_never_touches_the_network(wenv, monkeypatch):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the cache.*HAT_PLUGIN_OFFLINE") as caught:
        weights.fetch("m")
    assert "m.pth" in str(caught.value) and str(wenv.cache) in str(caught.value)
    assert not weights.is_cached("m")
    assert wenv.server.all_hits == []

    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "0")
    path = weights.fetch("m")
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "yes")
    assert weights.fetch("m") == path  # a verified cached file is fine offline
    assert len(wenv.server.all_hits) == 1


def test_offline_with_a_damaged_copy_moves_it_aside_and_says_where(wenv, monkeypatch):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    wenv.cache.mkdir()
    (wenv.cache / "m.pth").write_bytes(DATA[:1000])  # perhaps the user's own copy: it must not be lost
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "true")
    aside = wenv.cache / "m.pth.damaged"
    with pytest.raises(ModelNotFoundError, match="not the expected file") as caught:
        weights.fetch("m")
    assert str(aside) in str(caught.value)
    assert not (wenv.cache / "m.pth").exists()
    assert aside.read_bytes() == DATA[:1000]
    assert wenv.server.all_hits == []
    aside.unlink()  # the fixture checks that the cache holds nothing else


def test_mirror_is_tried_first(wenv, monkeypatch):
    wenv.server.add("/mirror/m.pth", DATA)
    wenv.add_model("m", DATA, [wenv.server.add("/official/m.pth", DATA)])
    monkeypatch.setenv("HAT_PLUGIN_MIRROR", wenv.server.base + "/mirror/")
    assert weights.fetch("m").read_bytes() == DATA
    assert [h.path for h in wenv.server.all_hits] == ["/mirror/m.pth"]


def test_failing_mirror_falls_back_to_manifest_urls(wenv, monkeypatch):
    wenv.add_model("m", DATA, [wenv.server.add("/official/m.pth", DATA)])
    monkeypatch.setenv("HAT_PLUGIN_MIRROR", wenv.server.base + "/mirror")
    assert weights.fetch("m").read_bytes() == DATA
    assert [(h.path, h.status) for h in wenv.server.all_hits] == [("/mirror/m.pth", 404), ("/official/m.pth", 200)]


def test_insecure_mirror_is_refused(wenv, monkeypatch):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    monkeypatch.setenv("HAT_PLUGIN_MIRROR", "http://mirror.example.com/hat")
    with pytest.raises(DownloadError, match="HAT_PLUGIN_MIRROR cannot be used: .*https only"):
        weights.fetch("m")
    assert wenv.server.all_hits == []


@pytest.mark.parametrize("damage", ["same size, later mtime", "truncated"])
def test_damaged_cached_file_is_detected_and_fetched_again(wenv, damage):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    path = weights.fetch("m")
    if damage == "truncated":
        path.write_bytes(DATA[:5000])
    else:
        _flip_in_place(path, later_by_ns=1_000_000_000)
    assert not weights.is_cached("m")
    assert weights.fetch("m").read_bytes() == DATA
    assert len(wenv.server.hits("/m.pth")) == 2
    assert weights.is_cached("m")


def test_hash_is_remembered_per_size_and_mtime(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    path = weights.fetch("m")
    record = (wenv.cache / ".state" / "m.pth.sha256.json").read_text()
    assert hashlib.sha256(DATA).hexdigest() in record
    # Same size, same mtime, same inode: the remembered hash is trusted and the file is not read again, even
    # after a restart (the in-process memo is dropped, the record on disk is used).
    _flip_in_place(path, later_by_ns=0)
    cache._memo.clear()
    assert weights.is_cached("m")
    # Any change of mtime makes it rehash, and the damage is found.
    _flip_in_place(path, later_by_ns=1)
    assert not weights.is_cached("m")
    path.write_bytes(DATA)  # leave a good file for the final cache check


def test_file_placed_in_the_cache_by_hand_is_used_after_verification(wenv):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", fault="404")])
    wenv.cache.mkdir()
    (wenv.cache / "m.pth").write_bytes(DATA)
    assert weights.is_cached("m")
    assert weights.fetch("m").read_bytes() == DATA
    assert wenv.server.all_hits == []


def test_unusable_cache_folder_gives_a_clear_error(wenv, monkeypatch, tmp_path):
    wenv.add_model("m", DATA, [wenv.server.add("/m.pth", DATA)])
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(DownloadError, match="cannot use the weights cache .*set HAT_PLUGIN_CACHE"):
        weights.fetch("m")


def _bundled(wenv, monkeypatch, tmp_path, data: bytes | None, sha: str | None) -> None:
    """A manifest whose model 'tiny' ships in a (temporary) package folder, holding ``data`` if given."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    if data is not None:
        (folder / "tiny.safetensors").write_bytes(data)
    monkeypatch.setattr(api, "BUNDLED_DIR", folder)
    entry = wenv.add_model("tiny", DATA, [wenv.server.add("/tiny.safetensors", DATA)])
    wenv.put(entry | {"filename": "tiny.safetensors", "sha256": sha, "size": None, "urls": [], "bundled": True})


def test_bundled_model_is_verified_and_never_downloaded(wenv, monkeypatch, tmp_path):
    _bundled(wenv, monkeypatch, tmp_path, DATA[:999], hashlib.sha256(DATA[:999]).hexdigest())
    assert weights.fetch("tiny") == tmp_path / "bundled" / "tiny.safetensors"
    assert weights.is_cached("tiny")
    assert not (wenv.cache / "tiny.safetensors").exists()
    assert wenv.server.all_hits == []


@pytest.mark.parametrize(
    ("data", "sha", "error", "message"),
    [
        (None, "0" * 64, ModelNotFoundError, "missing from this installation"),
        (b"x" * 999, "0" * 64, CheckpointError, "damaged"),
    ],
    ids=["missing", "damaged"],
)
def test_bundled_model_problems_are_clear_errors(wenv, monkeypatch, tmp_path, data, sha, error, message):
    _bundled(wenv, monkeypatch, tmp_path, data, sha)
    with pytest.raises(error, match=message):
        weights.fetch("tiny")
    assert not weights.is_cached("tiny")

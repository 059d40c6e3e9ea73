"""The desktop app's Qt-free queue rules: what gets added (never opening a pipe), names that tell repeated file
names apart, Start/Retry semantics, the saved queue, and the size/time texts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gui.formatting import format_seconds, format_size
from gui.queue_model import ItemState, JobQueue, distinct_names


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_add_files_and_reject_non_images(tmp_path):
    queue = JobQueue()
    image = touch(tmp_path / "a.PNG")
    text = touch(tmp_path / "notes.txt")
    result = queue.add_paths([image, text, tmp_path / "missing.png"])
    assert [i.source for i in result.added] == [image]
    assert result.rejected == [text, tmp_path / "missing.png"]
    assert result.reasons == {text: "not an image or video file", tmp_path / "missing.png": "not found"}
    assert [i.state for i in queue.items] == [ItemState.QUEUED]
    assert queue.items[0].root is None and queue.items[0].subfolder == Path()


def test_a_named_pipe_called_png_is_refused_without_opening_it(tmp_path):
    """Opening a FIFO blocks until a writer appears: adding it alone or inside a folder must only ``stat`` it."""
    album = tmp_path / "album"
    touch(album / "real.png")
    os.mkfifo(album / "x.png")
    os.mkfifo(tmp_path / "y.png")
    queue = JobQueue()
    alone = queue.add_paths([tmp_path / "y.png"])
    assert alone.added == [] and "not a regular file" in alone.reasons[tmp_path / "y.png"]
    folder = queue.add_paths([album])
    assert [i.source.name for i in folder.added] == ["real.png"]
    assert [(p.name, "regular" in why) for p, why in folder.skipped] == [("x.png", True)]


def test_folders_recursive_or_not_and_duplicates(tmp_path):
    top = touch(tmp_path / "set" / "top.jpg")
    deep = touch(tmp_path / "set" / "sub" / "deep.webp")
    touch(tmp_path / "set" / "sub" / "readme.md")
    flat = JobQueue()
    assert [i.source for i in flat.add_paths([tmp_path / "set"], recursive=False).added] == [top]
    queue = JobQueue()
    added = queue.add_paths([tmp_path / "set"], recursive=True).added
    assert sorted(i.source for i in added) == sorted([top, deep])
    assert all(i.root == tmp_path / "set" for i in added)
    assert {i.source.name: i.subfolder for i in added} == {"top.jpg": Path(), "deep.webp": Path("sub")}
    again = queue.add_paths([top])
    assert again.added == [] and again.duplicates == [top]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert queue.add_paths([empty]).rejected == [empty]


def test_start_takes_queued_and_cancelled_items_retry_takes_failed_ones(tmp_path):
    queue = JobQueue()
    a, b, c, d = queue.add_paths([touch(tmp_path / f"{n}.png") for n in "abcd"]).added
    a.state, b.state, c.state = ItemState.DONE, ItemState.CANCELLED, ItemState.FAILED
    assert queue.startable() == [b, d], "a cancel is not a failure: Start runs the item again"
    c.message, c.output = "boom", tmp_path / "c_x2.png"
    assert queue.retry() == [b, c]
    assert (c.state, c.message, c.output) == (ItemState.QUEUED, "", None)
    assert queue.requeue([d]) == [], "an item still waiting is left as it is"


def test_finished_items_can_be_added_again_and_removed(tmp_path):
    queue = JobQueue()
    item = queue.add_paths([touch(tmp_path / "a.png")]).added[0]
    item.state = ItemState.DONE
    assert len(queue.add_paths([item.source]).added) == 1
    assert queue.remove_finished() == [item.id]
    assert len(queue) == 1


def test_items_being_worked_on_are_not_removed(tmp_path):
    queue = JobQueue()
    a, b, c = queue.add_paths([touch(tmp_path / f"{n}.png") for n in "abc"]).added
    a.state, b.state = ItemState.RUNNING, ItemState.LOADING
    assert queue.remove([a.id, b.id, c.id]) == [c.id]
    assert queue.items == [a, b]


def test_repeated_names_show_as_much_of_the_path_as_tells_them_apart():
    paths = [Path("/p/2023/rose.png"), Path("/p/2024/rose.png"), Path("/p/2024/tulip.png"), Path("/q/x/a/b.png")]
    paths.append(Path("/r/y/a/b.png"))
    assert distinct_names(paths) == ["2023/rose.png", "2024/rose.png", "tulip.png", "x/a/b.png", "y/a/b.png"]
    assert distinct_names([Path("/p/a.png"), Path("/p/a.png")]) == ["a.png", "a.png"], "one file: no path needed"


def test_the_queue_comes_back_with_finished_states(tmp_path):
    queue = JobQueue()
    done, failed, running, gone = queue.add_paths([touch(tmp_path / f"{n}.png") for n in "abcd"]).added
    folder_item = queue.add_paths([touch(tmp_path / "album" / "sub" / "e.png").parent.parent]).added[0]
    done.state, done.output, done.seconds = ItemState.DONE, touch(tmp_path / "a_x2.png"), 1.5
    done.model = tmp_path / "weights.safetensors"
    failed.state, failed.message = ItemState.FAILED, "not a readable image"
    running.state = ItemState.RUNNING
    records = queue.to_records()
    gone.source.unlink()
    again = JobQueue()
    assert again.restore([*records, {"nonsense": 1}, "junk"]) == (4, 3)
    shown = {i.source.name: (i.state, i.message, i.output, i.seconds) for i in again.items}
    assert shown == {
        "a.png": (ItemState.DONE, "", tmp_path / "a_x2.png", 1.5),
        "b.png": (ItemState.FAILED, "not a readable image", None, None),
        "c.png": (ItemState.QUEUED, "", None, None),
        "e.png": (ItemState.QUEUED, "", None, None),
    }
    assert [i.model for i in again.items] == [tmp_path / "weights.safetensors", None, None, None]
    assert again.items[-1].root == folder_item.root and again.items[-1].subfolder == Path("sub")
    (tmp_path / "a_x2.png").unlink()
    third = JobQueue()
    third.restore(records)
    assert third.items[0].state is ItemState.QUEUED, "a done item whose output is gone is queued again"


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "estimating…"), (4.4, "4 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "size unknown"), (512, "512 B"), (20_500, "20 KB"), (1_288_252, "1.3 MB"), (81_089_561, "81 MB")],
)
def test_format_size(size, text):
    assert format_size(size) == text


def test_videos_are_queued_and_work_folders_are_never_entered(tmp_path):
    """Videos join the queue as images do; the chunks of an interrupted video (``OUT.hat-work``) are not inputs."""
    (tmp_path / "clip.mkv").write_bytes(b"x")
    (tmp_path / "photo.png").write_bytes(b"x")
    work = tmp_path / "clip_x2.mkv.hat-work"
    work.mkdir()
    (work / "chunk-000000.mkv").write_bytes(b"x")
    queue = JobQueue()
    result = queue.add_paths([tmp_path])
    assert sorted(item.source.name for item in result.added) == ["clip.mkv", "photo.png"]
    assert {item.source.name: item.kind for item in queue.items} == {"clip.mkv": "video", "photo.png": "image"}
    assert [item.is_video for item in queue.add_paths([tmp_path / "film.MP4"]).added] == []
    (tmp_path / "film.MP4").write_bytes(b"x")
    assert [item.is_video for item in queue.add_paths([tmp_path / "film.MP4"]).added] == [True]

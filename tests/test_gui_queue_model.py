"""The desktop app's Qt-free queue rules: what gets added, where outputs go, retries, and the time-left estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.queue_model import ItemState, JobQueue, TimeLeft, format_seconds, format_size, output_path


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
    assert [i.state for i in queue.items] == [ItemState.QUEUED]


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
    again = queue.add_paths([top])
    assert again.added == [] and again.duplicates == [top]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert queue.add_paths([empty]).rejected == [empty]


def test_finished_items_can_be_added_again_and_retried(tmp_path):
    queue = JobQueue()
    item = queue.add_paths([touch(tmp_path / "a.png")]).added[0]
    item.state, item.message = ItemState.FAILED, "boom"
    assert queue.retry() == [item] and item.state is ItemState.QUEUED and item.message == ""
    item.state = ItemState.DONE
    assert len(queue.add_paths([item.source]).added) == 1
    assert queue.remove_finished() == [item.id]
    assert len(queue) == 1


def test_running_items_are_not_removed(tmp_path):
    queue = JobQueue()
    a, b = queue.add_paths([touch(tmp_path / "a.png"), touch(tmp_path / "b.png")]).added
    a.state = ItemState.RUNNING
    assert queue.remove([a.id, b.id]) == [b.id]
    assert queue.items == [a]


def test_output_path_beside_input_with_suffix(tmp_path):
    source = tmp_path / "photo.jpg"
    assert output_path(source, None, None, "_x{scale}", "same", 4, "HAT") == tmp_path / "photo_x4.jpg"
    assert output_path(source, None, None, "-{model}", "png", 2, "HAT-S") == tmp_path / "photo-HAT-S.png"
    assert output_path(source, None, None, "_{oops}", "webp", 2, "m") == tmp_path / "photo_{oops}.webp"


def test_output_folder_keeps_subfolders_below_the_added_folder(tmp_path):
    root = tmp_path / "album"
    source = root / "2024" / "june" / "x.tif"
    out = tmp_path / "out"
    assert output_path(source, root, out, "", "same", 2, "m") == out / "2024" / "june" / "x.tif"
    assert output_path(source, None, out, "", "same", 2, "m") == out / "x.tif"


def test_same_format_falls_back_to_png_when_input_format_cannot_be_written(tmp_path):
    assert output_path(tmp_path / "anim.gif", None, None, "_up", "same", 2, "m").name == "anim_up.png"


class Clock:
    """A clock the test advances by hand, so the estimate is exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_left_from_tiles_then_from_finished_items():
    clock = Clock()
    eta = TimeLeft(clock)
    assert eta.estimate(0, 0, waiting=3) is None
    eta.start_item()
    clock.now += 2.0
    assert eta.estimate(1, 4, waiting=0) == pytest.approx(6.0)
    assert eta.estimate(1, 4, waiting=2) == pytest.approx(6.0 + 2 * 8.0)
    clock.now += 6.0
    eta.finish_item(counted=True)
    eta.start_item()
    clock.now += 3.0
    assert eta.estimate(0, 0, waiting=1) == pytest.approx(5.0 + 8.0)
    eta.finish_item(counted=False)
    assert eta.estimate(0, 0, waiting=2) == pytest.approx(16.0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "estimating…"), (4.4, "4 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "size unknown"), (512, "512 B"), (20_500, "20.5 KB"), (9_600_000, "9.6 MB"), (3_200_000_000, "3.2 GB")],
)
def test_format_size(size, text):
    assert format_size(size) == text

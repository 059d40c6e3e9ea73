"""Weights that ask for any memory, or that load but cannot run: a header whose OCAB table claims a 3007-px or
1000-px window, tensors claimed beyond the end of the file, a configuration too big for the free memory,
quantized/int8 tensors, 1-channel networks. Each is refused with one line before anything big is allocated.

The window claims are safetensors files whose data is a hole (``hostile_files.sparse_safetensors``): the header
is real, the claimed hundreds of megabytes take no disk. Loading runs in a subprocess under an address-space cap
(``run_limited``), so a regression fails the test instead of exhausting the machine."""

from __future__ import annotations

import pytest
import torch
from conftest import golden_weights
from hostile_files import SMALL, run_limited, safetensors_header, sparse_safetensors
from PIL import Image as PILImage
from safetensors.torch import load_file, save_file

from hat_plugin import checkpoint, load_model
from hat_plugin.cli import EXIT_FAILED, main
from hat_plugin.config import PRESETS, check_affordable, implied_memory
from hat_plugin.errors import CheckpointError, out_of_memory_message

WEIGHTS = golden_weights("tiny-x2-w8")  # window 8, overlap window 12, 2 layers of 2 blocks, 2 heads
OCA_TABLE = "relative_position_bias_table"


def claiming_window(tmp_path, overlap_window: int, keep_index: bool = False) -> tuple[object, int]:
    """The golden tiny model's header with every OCAB table claiming an ``overlap_window``-px key window."""
    shapes = {}
    for name, entry in safetensors_header(WEIGHTS).items():
        if name == "__metadata__" or (name.startswith("relative_position_index") and not keep_index):
            continue
        shape = list(entry["shape"])
        if "overlap_attn." + OCA_TABLE in name:
            shape[0] = (8 + overlap_window - 1) ** 2
        shapes[name] = shape
    path = tmp_path / f"oca-{overlap_window}.safetensors"
    return path, sparse_safetensors(path, shapes)


def load_limited(path, memory: int = 6 << 30) -> str:
    """``load_model(path)`` in a fresh process under an address-space cap: ``ok`` or ``Type: message``."""
    code = (
        "from hat_plugin import load_model\n"
        "try:\n"
        f"    load_model({str(path)!r}); print('ok')\n"
        "except BaseException as exc:\n"
        "    print(type(exc).__name__ + ': ' + str(exc))\n"
    )
    done = run_limited(code, memory=memory, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("window", "claimed_mb"), [(3000, 72), (1000, 8)])
def test_oca_window_claimed_by_the_header_is_refused_before_loading(tmp_path, window, claimed_mb):
    """The report's files: a 3007-px table made the loader try 9.2 GB, a 1000-px one 3.2 GB (here on the tiny
    model's 8-px windows, whose index tables would take 4.6 GB and 0.5 GB)."""
    path, claimed = claiming_window(tmp_path, window)
    assert claimed > claimed_mb * 1e6 and path.stat().st_blocks * 512 < 1 << 20  # claimed, not stored
    result = load_limited(path)
    assert result.startswith("CheckpointError: "), result
    assert str(path) in result and f"a {window}-px overlapping window for 8-px windows (at most 16)" in result
    assert "implausible HAT network" in result and "GB of memory" in result
    assert "alloc_cpu" not in result and "MemoryError" not in result


@pytest.mark.slow  # a real process
def test_the_cli_says_it_in_one_line(tmp_path):
    path, _ = claiming_window(tmp_path, 3000, keep_index=True)
    image = tmp_path / "a.png"
    PILImage.fromarray(SMALL).save(image)
    code = (
        "import sys; from hat_plugin.cli import main; "
        f"sys.exit(main([{str(image)!r}, '--weights', {str(path)!r}, '--device', 'cpu']))"
    )
    done = run_limited(code, memory=6 << 30, timeout=300)
    assert done.returncode == EXIT_FAILED, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3000-px overlapping window" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "a_x2.png").exists()


def test_pth_claiming_a_big_window_is_refused_from_its_shapes(tmp_path):
    """A .pth holds its tensors for real (8 MB here); the window it implies is refused before the index tables
    (512 MB for this claim) are made."""
    state = load_file(str(WEIGHTS))
    for name in list(state):
        if "overlap_attn." + OCA_TABLE in name:
            state[name] = torch.zeros((8 + 1000 - 1) ** 2, state[name].shape[1])
        elif name.startswith("relative_position_index"):
            del state[name]
    path = tmp_path / "big-window.pth"
    torch.save({"params_ema": state}, path)
    result = load_limited(path)
    assert result.startswith("CheckpointError: ") and "a 1000-px overlapping window" in result, result


def test_tensors_claimed_past_the_end_of_the_file_are_refused_from_the_header(tmp_path):
    path, claimed = claiming_window(tmp_path, 12, keep_index=True)  # a normal window ...
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size - 4096)  # ... in a file cut short
    with pytest.raises(CheckpointError, match=rf"its header claims {claimed:,} bytes of tensors but the file holds"):
        load_model(path)


def test_a_configuration_bigger_than_the_free_memory_is_refused_before_allocating(monkeypatch):
    needed = implied_memory(load_model(WEIGHTS).config)
    monkeypatch.setattr(checkpoint, "available_memory", lambda: needed - 1)
    with pytest.raises(CheckpointError, match=r"needs about [\d.]+ GB of memory to load .* more than the"):
        load_model(WEIGHTS)
    monkeypatch.setattr(checkpoint, "available_memory", lambda: needed)
    load_model(WEIGHTS)


def test_implied_memory_grows_with_the_network_and_is_modest_for_real_ones():
    small, medium, large = (implied_memory(PRESETS[name]) for name in ("HAT-S_SRx4", "HAT_SRx4", "HAT-L_SRx4"))
    assert 10e6 < small < medium < large < 2e9  # published models: tens to hundreds of MB before any image
    with pytest.raises(CheckpointError, match="needs about"):
        check_affordable(PRESETS["HAT-L_SRx4"], available=large // 2)


@pytest.mark.parametrize("kind", ["int8", "quantized"])
def test_integer_or_quantized_weights_get_one_line(tmp_path, kind):
    state = load_file(str(WEIGHTS))
    name = "conv_first.weight"
    if kind == "int8":
        state[name] = state[name].mul(100).to(torch.int8)
        path = tmp_path / "int8.safetensors"
        save_file(state, str(path))
    else:
        state[name] = torch.quantize_per_tensor(state[name], 0.01, 0, torch.qint8)
        path = tmp_path / "quantized.pth"
        torch.save(state, path)
    with pytest.raises(CheckpointError, match="quantized or integer weights are not supported") as info:
        load_model(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_one_channel_weights_are_refused_at_load(tmp_path, capsys):
    """A grey-only network would load and then fail every image; it is refused at load with the reason."""
    state = load_file(str(WEIGHTS))
    state["conv_first.weight"] = state["conv_first.weight"][:, :1].contiguous()
    state["conv_last.weight"] = state["conv_last.weight"][:1].contiguous()
    state["conv_last.bias"] = state["conv_last.bias"][:1].contiguous()
    path = tmp_path / "grey.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="the weights are for 1-channel images; only RGB"):
        load_model(path)
    image = tmp_path / "a.png"
    PILImage.fromarray(SMALL).save(image)
    assert main([str(image), "--weights", str(path), "--device", "cpu"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "1-channel images" in err and not (tmp_path / "a_x2.png").exists()


def test_out_of_memory_on_the_cpu_does_not_advise_the_cpu():
    on_cpu = out_of_memory_message("cpu", 256)
    assert "run on the CPU" not in on_cpu and on_cpu.startswith("out of memory on cpu even with 256px tiles: ")
    assert on_cpu.endswith("close other programs, or use a smaller model")
    assert out_of_memory_message("cuda:0").endswith("use a smaller model, or run on the CPU")

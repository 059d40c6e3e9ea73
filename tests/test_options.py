"""``hat_plugin.options``: the engine's settings in one frozen value, and the one table of environment variables."""

from __future__ import annotations

import ast
import dataclasses
import pickle
import re
from pathlib import Path

import pytest

from hat_plugin.errors import OptionError
from hat_plugin.options import ENVIRONMENT, EngineOptions, env, env_flag, environment_table

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("hat_plugin", "gui", "vs_filter") for p in sorted((REPO / folder).rglob("*.py"))]
ENGINE_VARIABLES = (
    "HAT_PLUGIN_CUDA_RUNNER",
    "HAT_PLUGIN_COMPILE_MODE",
    "HAT_PLUGIN_PAD_HEADS",
    "HAT_PLUGIN_FORCE_PRECISION",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable.name, raising=False)
    return monkeypatch


def test_defaults() -> None:
    options = EngineOptions()
    assert dataclasses.asdict(options) == {
        "device": "auto",
        "precision": "auto",
        "tile": 0,
        "overlap": 16,
        "batch": 0,
        "runner": "eager",
        "compile_mode": "max-autotune",
        "pad_heads": False,
        "force_precision": False,
        "max_memory": 0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.tile = 64  # type: ignore[misc]


def test_values_are_normalised_and_the_object_pickles() -> None:
    options = EngineOptions(device=" CPU ", precision="Half", runner=" Graphs ", compile_mode="default", tile=64)
    assert (options.device, options.precision, options.runner, options.compile_mode) == (
        "cpu",
        "fp16",
        "graphs",
        "default",
    )
    assert pickle.loads(pickle.dumps(options)) == options
    assert hash(options) == hash(
        EngineOptions(device="cpu", precision="fp16", runner="graphs", compile_mode="default", tile=64)
    )
    changed = options.replace(tile=128)
    assert (changed.tile, options.tile) == (128, 64)


@pytest.mark.parametrize(
    ("changes", "option", "message"),
    [
        ({"tile": -1}, "tile", "tile must be 0 or more, not -1"),
        ({"tile": 3.5}, "tile", "tile must be a whole number, not 3.5"),
        ({"overlap": True}, "overlap", "overlap must be a whole number, not True"),
        ({"batch": "2"}, "batch", "batch must be a whole number, not '2'"),
        ({"precision": "fp8"}, "precision", "unknown precision 'fp8': use auto, fp32, fp16, bf16"),
        ({"runner": "warp"}, "runner", "unknown runner 'warp': use eager, graphs, compile"),
        ({"compile_mode": "fast"}, "compile_mode", "unknown compile_mode 'fast'"),
        ({"pad_heads": 1}, "pad_heads", "pad_heads must be True or False, not 1"),
        ({"force_precision": "yes"}, "force_precision", "force_precision must be True or False"),
        ({"device": ""}, "device", "device must name a device"),
    ],
)
def test_bad_values_are_refused_with_the_option_key(changes: dict, option: str, message: str) -> None:
    with pytest.raises(OptionError, match=re.escape(message)) as caught:
        EngineOptions(**changes)
    assert caught.value.option == option
    assert caught.value.worded(lambda key: f"<{key}>").startswith(("<", "unknown <"))


def test_the_environment_gives_the_engine_defaults(clean_env: pytest.MonkeyPatch) -> None:
    assert EngineOptions.from_environment() == EngineOptions()
    clean_env.setenv("HAT_PLUGIN_CUDA_RUNNER", " Graphs ")
    clean_env.setenv("HAT_PLUGIN_COMPILE_MODE", "reduce-overhead")
    clean_env.setenv("HAT_PLUGIN_PAD_HEADS", "1")
    clean_env.setenv("HAT_PLUGIN_FORCE_PRECISION", "yes")
    options = EngineOptions.from_environment(device="cpu", tile=32)
    assert options == EngineOptions(
        device="cpu", tile=32, runner="graphs", compile_mode="reduce-overhead", pad_heads=True, force_precision=True
    )
    assert EngineOptions.from_environment(runner="eager", pad_heads=False).runner == "eager", "arguments win"
    clean_env.setenv("HAT_PLUGIN_PAD_HEADS", "0")
    assert not EngineOptions.from_environment().pad_heads


@pytest.mark.parametrize(
    ("name", "word"), [("HAT_PLUGIN_CUDA_RUNNER", "runner"), ("HAT_PLUGIN_COMPILE_MODE", "compile mode")]
)
def test_a_bad_environment_value_names_the_variable(clean_env: pytest.MonkeyPatch, name: str, word: str) -> None:
    clean_env.setenv(name, "warp")
    with pytest.raises(OptionError, match=f"{name}='warp' is not a {word}: use "):
        EngineOptions.from_environment()


def test_env_reads_only_the_table(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HAT_PLUGIN_MIRROR", "  https://example.org/w  ")
    assert env("HAT_PLUGIN_MIRROR") == "https://example.org/w"
    assert env("HAT_PLUGIN_CACHE") == ""
    for value, on in (("1", True), ("yes", True), ("0", False), ("off", False), ("", False)):
        clean_env.setenv("HAT_PLUGIN_OFFLINE", value)
        assert env_flag("HAT_PLUGIN_OFFLINE") is on
    with pytest.raises(KeyError, match="HAT_PLUGIN_TYPO is not in"):
        env("HAT_PLUGIN_TYPO")


def test_every_variable_in_the_tree_is_in_the_table_and_the_readme() -> None:
    named = {v.name for v in ENVIRONMENT}
    used = set()
    for path in [*SOURCES, REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        used |= set(re.findall(r"HAT_PLUGIN_[A-Z_]+[A-Z]", path.read_text(encoding="utf-8")))
    assert used <= named, f"read or documented but not in the table: {sorted(used - named)}"
    assert set(ENGINE_VARIABLES) <= named
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert environment_table() in readme, "the README's table is environment_table() (python -m hat_plugin.options)"


def _reads_environment(node: ast.AST) -> bool:
    """``os.environ.get(...)``, ``os.environ[...]`` or ``os.getenv(...)`` (writes and membership tests are not reads
    of a setting)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = node.func.value
        if node.func.attr == "getenv":
            return True
        if node.func.attr == "get" and isinstance(owner, ast.Attribute) and owner.attr == "environ":
            return True
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Load)
        and getattr(node.value, "attr", "") == "environ"
    )


def test_only_options_reads_settings_from_the_environment() -> None:
    """One place reads the environment, and only when asked: no other module of the engine or a front end reads
    a variable (OpenMP's own, which ``runtime`` writes before PyTorch loads, and the C compiler's, are not
    settings of ours)."""
    allowed = {("hat_plugin/options.py", None), ("vs_filter/build.py", "CC"), ("hat_plugin/runners.py", "CC")}
    found = []
    for path in SOURCES:
        relative = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _reads_environment(node):
                key = node.args[0] if isinstance(node, ast.Call) and node.args else getattr(node, "slice", None)
                name = key.value if isinstance(key, ast.Constant) else None
                if (relative, None) not in allowed and (relative, name) not in allowed:
                    found.append(f"{relative}:{getattr(node, 'lineno', '?')} {name!r}")
    assert not found, f"environment read outside hat_plugin/options.py: {found}"


def test_no_module_reads_the_environment_at_import() -> None:
    """Module-level statements never call the readers: a setting is read when a call needs it."""
    for path in SOURCES:
        todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
        while todo:
            node = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs when called (its decorators and defaults do not matter here: none read)
            called = node.func if isinstance(node, ast.Call) else None
            name = getattr(called, "id", getattr(called, "attr", ""))
            assert name not in ("env", "env_flag", "from_environment") and not _reads_environment(node), (
                f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)} reads the environment at import"
            )
            todo.extend(ast.iter_child_nodes(node))

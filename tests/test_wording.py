"""Engine errors name settings by key, and each front end spells the key its own way: ``--crf`` on the command
line, ``crf=`` in the VapourSynth filter, the settings panel's label in the app. Every engine error that carries a
key is found in the source and worded by each front end; no front end may show another's spelling."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gui import wording as app
from hat_plugin.cli import wording as cli
from hat_plugin.errors import DamagedVideoError, HATError, OptionError, whole_number
from hat_plugin.video import EncoderSettings
from vs_filter import errors as vs_filter

REPO = Path(__file__).resolve().parents[1]
ENGINE = sorted(p for p in (REPO / "hat_plugin").rglob("*.py") if "cli" not in p.relative_to(REPO).parts)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*|hat-upscale [a-z]|python -m hat_plugin")
FRONT_ENDS: dict[str, Callable[[HATError], str]] = {"cli": cli.worded, "filter": vs_filter.worded, "app": app.worded}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of every docstring node (they describe the code and may name the front ends that use it)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    for node in ast.walk(tree):  # attribute docstrings: a bare string after an assignment
        for body in (getattr(node, "body", None), getattr(node, "orelse", None)):
            if isinstance(body, list):
                for before, after in zip(body, body[1:], strict=False):
                    if isinstance(before, ast.Assign | ast.AnnAssign) and isinstance(after, ast.Expr):
                        found.add(id(after.value))
    return found


def test_no_engine_string_names_a_command_line_flag() -> None:
    """The engine words settings neutrally (option keys); only the CLI knows its flags and commands. Ray's own command line
    (``ray start --head``), which a message tells the user to run, is not ours."""
    found = []
    for path in ENGINE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in skip:
                continue
            text = node.value
            if isinstance(text, str) and FLAG.search(text) and "ray start" not in text:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text!r}")
    assert not found, "engine strings naming a flag:\n" + "\n".join(found)


def _keys(call: ast.Call) -> tuple[list[str], str | None]:
    """The option keys a call passes (constants), or the name of the variable that holds its one key."""
    value = next(k.value for k in call.keywords if k.arg == "option")
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value], None
    if isinstance(value, ast.Tuple) and all(isinstance(e, ast.Constant) for e in value.elts):
        return [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)], None
    if isinstance(value, ast.Name):
        return [], value.id
    raise AssertionError(f"option= must be a key, a tuple of keys or a variable, not {ast.dump(value)}")


def _template(message: ast.expr, variable: str | None, key: str) -> str:
    """The message as the engine writes it, with interpolated values as ``…`` and the key variable as ``key``."""
    if isinstance(message, ast.Constant):
        return str(message.value)
    assert isinstance(message, ast.JoinedStr), ast.dump(message)
    parts = []
    for part in message.values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
        else:
            inner = part.value if isinstance(part, ast.FormattedValue) else None
            parts.append(key if isinstance(inner, ast.Name) and inner.id == variable else "…")
    return "".join(parts)


def engine_errors() -> list[tuple[str, HATError]]:
    """Every engine error raised with an option key, built from its message in the source (a key held in a
    variable is tried with every key the command line knows)."""
    errors: list[tuple[str, HATError]] = []
    for path in [*ENGINE, REPO / "hat_plugin" / "errors.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not any(k.arg == "option" for k in node.keywords) or not node.args:
                continue
            if not isinstance(node.args[0], ast.Constant | ast.JoinedStr):
                continue
            keys, variable = _keys(node)
            for key in keys or sorted(cli.FLAGS):
                template = _template(node.args[0], variable, key)
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                errors.append((where, OptionError(template, option=tuple(keys) or key)))
    return errors


ERRORS = engine_errors()


def test_the_engine_errors_were_found() -> None:
    keyed = {key for _, exc in ERRORS for key in exc.options}
    assert len(ERRORS) >= 30 and {"crf", "bitrate", "preset", "pix_fmt", "device", "tile", "resume"} <= keyed


@pytest.mark.parametrize(("where", "exc"), ERRORS, ids=[where for where, _ in ERRORS])
def test_each_front_end_words_every_keyed_error_its_own_way(where: str, exc: HATError) -> None:
    for key in exc.options:
        assert f"{{{key}}}" in exc.template, f"{where}: the message does not place {key}"
        assert key in cli.FLAGS, f"{where}: the command line has no spelling for {key}"
    texts = {name: word(exc) for name, word in FRONT_ENDS.items()}
    for name, text in texts.items():
        for key in exc.options:
            assert f"{{{key}}}" not in text, f"{where}: {name} left the placeholder of {key}: {text}"
    assert not FLAG.search(texts["filter"]) and not FLAG.search(texts["app"]), texts
    for spelling in vs_filter.ARGUMENTS.values():
        assert spelling not in texts["cli"] and spelling not in texts["app"], texts
    for label in app.LABELS.values():
        assert f"\u201c{label}\u201d" not in texts["cli"] and f"\u201c{label}\u201d" not in texts["filter"], texts
    for key in exc.options:
        assert cli.FLAGS[key] in texts["cli"] and app.spelling(key) in texts["app"]
        assert vs_filter.spelling(key) in texts["filter"]


def test_real_engine_errors_through_each_front_end() -> None:
    with pytest.raises(OptionError) as caught:
        EncoderSettings(codec="x265", crf=60).checked()
    exc = caught.value
    assert exc.option == "crf"
    assert str(exc) == "crf for x265 must be from 0 to 51, not 60"
    assert cli.worded(exc) == "--crf for x265 must be from 0 to 51, not 60"
    assert app.worded(exc) == "the \u201cQuality\u201d setting for x265 must be from 0 to 51, not 60"
    with pytest.raises(OptionError) as caught:
        whole_number("tile", -3, 0)
    assert (cli.worded(caught.value), vs_filter.worded(caught.value)) == (
        "--tile must be 0 or more, not -3",
        "tile= must be 0 or more, not -3",
    )
    assert app.worded(caught.value) == "the \u201cTile size\u201d setting must be 0 or more, not -3"


def test_keys_survive_pickling_and_plain_errors_are_unchanged() -> None:
    """Errors cross process boundaries (Ray tasks): the key and the template come back."""
    import pickle

    exc = DamagedVideoError("{start} frame 3 is damaged", 3, option="start")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.frame, back.option, cli.worded(back)) == (3, "start", "--start frame 3 is damaged")
    plain = HATError("a {brace} stays as it is")
    assert str(plain) == cli.worded(plain) == app.worded(plain) == "a {brace} stays as it is"

"""optuna_nas reaches Optuna's private names only through ``optuna_nas/_compat.py`` (#16).

Optuna promises nothing about a name that starts with ``_``; keeping every such use in one module
(with a test per symbol in ``tests/test_compat.py``) is what lets a new Optuna release be
checked, and adapted to, in one place. This test reads the package's source and fails naming
``file:line`` for:

- an import of a private Optuna module or name (a dotted component or an imported name that
  starts with ``_``), type-only imports included;
- an attribute chain ``optuna.<...>._name``;
- ``obj._name`` (and ``getattr``/``hasattr``/``setattr`` with ``"_name"``) where ``_name`` is an
  attribute or method that Optuna's own source defines: ``study._storage``,
  ``trial._trial_id``, ``storage._backend``, ...;
- in a class derived from an Optuna class, ``self._name`` or ``def _name`` for a private name of
  one of its Optuna bases: an inherited private attribute, or an overridden private hook.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import functools
import importlib
import inspect
from pathlib import Path
import re
import textwrap
import types
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "optuna_nas"

#: Files allowed past the boundary, with the reason. Remove a file's entry when it is moved
#: behind ``_compat.py``; an entry that is no longer needed fails the test.
EXEMPT = {
    "optuna_nas/_compat.py": "the boundary itself",
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_optuna_module(name: str) -> bool:
    return name == "optuna" or name.startswith("optuna.")


def _defined_private_names(tree: ast.AST) -> set[str]:
    """Private names a source defines: ``self._x = ...`` and class-level ``_x``."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and isinstance(node.ctx, ast.Store)
        ):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
    return {n for n in names if _is_private(n)}


@functools.cache
def optuna_private_names() -> frozenset[str]:
    """Every private attribute or method name that the installed Optuna's source defines."""
    names: set[str] = set()
    for path in Path(optuna.__file__).parent.rglob("*.py"):
        names |= _defined_private_names(ast.parse(path.read_text(encoding="utf-8")))
    return frozenset(names)


@functools.cache
def _class_private_names(cls: type) -> frozenset[str]:
    """Private names of the Optuna classes in ``cls``'s MRO (what a subclass inherits)."""
    names: set[str] = set()
    for base in cls.__mro__:
        if not _is_optuna_module(base.__module__):
            continue
        names |= {n for n in vars(base) if _is_private(n)}
        try:
            source = textwrap.dedent(inspect.getsource(base))
        except (OSError, TypeError):  # a class without Python source
            continue
        names |= _defined_private_names(ast.parse(source))
    return frozenset(names)


def _import_violations(node: ast.AST) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "optuna" and any(_is_private(p) for p in parts):
                yield node.lineno, f"imports the private module {alias.name}"
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        parts = node.module.split(".")
        if parts[0] != "optuna":
            return
        if any(_is_private(p) for p in parts):
            yield node.lineno, f"imports from the private module {node.module}"
        for alias in node.names:
            if _is_private(alias.name):
                yield node.lineno, f"imports the private name {node.module}.{alias.name}"


def _dotted(node: ast.expr) -> list[str] | None:
    """``["a", "b", "c"]`` for ``a.b.c``, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _access_violations(node: ast.AST) -> Iterator[tuple[int, str]]:
    private = optuna_private_names()
    if isinstance(node, ast.Attribute) and _is_private(node.attr):
        dotted = _dotted(node)
        if dotted is not None and dotted[0] == "optuna":
            yield node.lineno, f"uses the private Optuna name {'.'.join(dotted)}"
        elif node.attr in private and not (
            isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        ):
            owner = ast.unparse(node.value)
            yield node.lineno, f"reads Optuna's private attribute {node.attr} of {owner}"
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value in private
    ):
        yield node.lineno, f"{node.func.id}(..., {node.args[1].value!r}): an Optuna private"


def _class_violations(tree: ast.Module, namespace: dict[str, Any]) -> Iterator[tuple[int, str]]:
    for node in tree.body:
        cls = namespace.get(node.name) if isinstance(node, ast.ClassDef) else None
        if not isinstance(cls, type):
            continue
        inherited = _class_private_names(cls)
        if not inherited:
            continue
        for item in ast.walk(node):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                item.name in inherited
            ):
                yield item.lineno, f"{node.name} overrides Optuna's private {item.name}"
            elif (
                isinstance(item, ast.Attribute)
                and isinstance(item.value, ast.Name)
                and item.value.id == "self"
                and item.attr in inherited
            ):
                yield item.lineno, f"{node.name} uses its Optuna base's private {item.attr}"


def violations(label: str, source: str, namespace: dict[str, Any]) -> list[str]:
    """``"label:line: what"`` for each private Optuna use in ``source`` (a module whose
    top-level names are ``namespace``)."""
    tree = ast.parse(source)
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        found.update(_import_violations(node))
        found.update(_access_violations(node))
    found.update(_class_violations(tree, namespace))
    return [f"{label}:{line}: {what}" for line, what in sorted(found)]


def _module_violations(path: Path) -> list[str]:
    label = path.relative_to(ROOT).as_posix()
    name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    name = name.removesuffix(".__init__")
    module = importlib.import_module(name)
    return violations(label, path.read_text(encoding="utf-8"), vars(module))


def test_no_private_optuna_use_outside_compat() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(ROOT).as_posix() not in EXEMPT:
            found += _module_violations(path)
    assert not found, (
        "private Optuna names outside optuna_nas/_compat.py; add a helper there (with a test "
        "in tests/test_compat.py) or use a public API:\n" + "\n".join(found)
    )


def test_every_exemption_is_still_needed() -> None:
    for label in sorted(set(EXEMPT) - {"optuna_nas/_compat.py"}):  # none today
        path = ROOT / label
        assert path.exists(), f"{label} is gone: remove it from EXEMPT"
        assert _module_violations(path), f"{label} is clean now: remove it from EXEMPT"


def test_the_compat_module_does_use_optuna_privates() -> None:
    # The scan sees what _compat.py wraps: were it blind, the test above could not fail.
    found = "\n".join(_module_violations(PACKAGE / "_compat.py"))
    for expected in (
        "imports from the private module optuna.storages._cached_storage",
        "reads Optuna's private attribute _storage of study",
        "reads Optuna's private attribute _trial_id of trial",
        "reads Optuna's private attribute _backend of storage",
        "HookedGrpcStorageProxy overrides Optuna's private _setup",
        "HookedGrpcStorageProxy uses its Optuna base's private _stub",
        "Heartbeat overrides Optuna's private _get_stale_trial_ids",
    ):
        assert expected in found


def test_every_compat_helper_has_a_test() -> None:
    from optuna_nas import _compat

    tests = (ROOT / "tests" / "test_compat.py").read_text(encoding="utf-8")
    untested = [name for name in _compat.__all__ if not re.search(rf"\b{name}\b", tests)]
    assert not untested, f"no test in tests/test_compat.py uses {untested}"


SAMPLE = """
from typing import TYPE_CHECKING
import optuna
import optuna.storages._heartbeat
from optuna.storages import _CachedStorage
from optuna.storages import RDBStorage

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


class Proxy(optuna.storages.JournalStorage):
    def __init__(self, path):
        super().__init__(optuna.storages.journal.JournalFileBackend(path))
        self._mine = 1

    def path(self):
        return self._backend, self._mine


class Mine:
    def __init__(self):
        self._storage = None

    def storage(self, study, trial):
        return self._storage or study._storage, trial._trial_id, getattr(study, "_study_id")


def hv(points):
    return optuna._hypervolume.compute_hypervolume(points, points[0]), RDBStorage
"""


def test_each_kind_of_private_use_is_found() -> None:
    module = types.ModuleType("sample")
    exec(compile(SAMPLE, "sample.py", "exec"), vars(module))
    found = "\n".join(violations("sample.py", SAMPLE, vars(module)))
    expected = [
        "sample.py:4: imports the private module optuna.storages._heartbeat",
        "sample.py:5: imports the private name optuna.storages._CachedStorage",
        "sample.py:9: imports from the private module optuna.artifacts._protocol",
        "sample.py:18: Proxy uses its Optuna base's private _backend",
        "sample.py:26: reads Optuna's private attribute _storage of study",
        "sample.py:26: reads Optuna's private attribute _trial_id of trial",
        "sample.py:26: getattr(..., '_study_id'): an Optuna private",
        "sample.py:30: uses the private Optuna name optuna._hypervolume",
    ]
    for line in expected:
        assert line in found
    assert "_mine" not in found  # a subclass's own private attribute is its own
    assert "of self" not in found  # and so are a plain class's

"""The import graph runs one way: base -> contract -> library | server | client -> tuning | drills -> CLI.

Every ``import`` statement of the project's packages is read with :mod:`ast` (imports
inside functions too: a lazy import is still a dependency) and each module is placed in
the group of its longest matching prefix below. An import may go to its own group or to
any group of a lower layer; groups side by side in one layer never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top; each layer maps group name -> module prefixes ("=name": that module alone,
# so a new module under serving/ has to be placed here rather than land in the contract).
LAYERS = (
    {"base": ("recsys_base",)},
    {"contract": ("=serving", "serving.contract")},
    {
        "library": ("recommenders",),
        "server": ("serving.server", "serving.deployment", "serving.config_files", "serving.testing"),
        "client": ("serving.client",),
    },
    {"tuning": ("tuning",), "drills": ("drills",)},
    {"cli": ("recsys",)},
)
PACKAGES = tuple(sorted({prefix.lstrip("=").split(".")[0] for layer in LAYERS for prefixes in layer.values() for prefix in prefixes}))
# What the thin client must never load, directly or through anything it imports.
HEAVY = ("tensorflow", "tensorflow_serving", "tf_keras", "keras", "tensorflow_recommenders", "keras_tuner")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports: project modules resolved to the deepest existing one, others by top name."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from serving import contract`` imports the submodule serving.contract.
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            while parts and ".".join(parts) not in MODULES and parts[0] in PACKAGES:
                parts.pop()
            found.add(".".join(parts) if parts and parts[0] in PACKAGES else name.split(".")[0])
    return found


def group_of(module: str) -> tuple[int, str]:
    matches = [
        (len(prefix), level, group)
        for level, layer in enumerate(LAYERS)
        for group, prefixes in layer.items()
        for prefix in prefixes
        if module == prefix.lstrip("=") or (not prefix.startswith("=") and module.startswith(prefix + "."))
    ]
    assert matches, f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}"
    _, level, group = max(matches)
    return level, group


GRAPH = {module: {target for target in imports_of(module) if target in MODULES} for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        group_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module):
    level, group = group_of(module)
    for target in sorted(GRAPH[module]):
        target_level, target_group = group_of(target)
        assert target_level < level or target_group == group, (
            f"{module} ({group}, layer {level}) imports {target} ({target_group}, layer {target_level}): "
            "imports go to the same group or to a lower layer"
        )


def test_no_two_packages_import_each_other():
    edges = {(a.split(".")[0], b.split(".")[0]) for a, targets in GRAPH.items() for b in targets}
    mutual = sorted((a, b) for a, b in edges if a < b and (b, a) in edges)
    assert not mutual, f"packages importing each other: {mutual}"


def test_the_thin_client_imports_only_the_contract():
    # Not even the base: importing recsys_base switches TensorFlow to Keras 2 in the
    # process of the backend service that imports the client.
    for module in (m for m in MODULES if group_of(m)[1] == "client"):
        outside = sorted(t for t in GRAPH[module] if group_of(t)[1] not in ("client", "contract"))
        assert not outside, f"{module} (thin client) imports {outside}: the client may import the contract only"


def test_the_thin_client_never_reaches_tensorflow():
    seen, todo = set(), [m for m in MODULES if group_of(m)[1] == "client"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        heavy = sorted(imports_of(module) & set(HEAVY))
        assert not heavy, f"{module} (reached from serving.client) imports {heavy}"
        todo.extend(GRAPH[module])


def test_the_graph_sees_a_violation(monkeypatch):
    # The checks above only mean something if an upward import would be caught.
    monkeypatch.setitem(GRAPH, "recsys_base.errors", {"recommenders.models.config"})
    with pytest.raises(AssertionError, match="imports recommenders.models.config"):
        test_imports_run_downward("recsys_base.errors")

"""The shape of the code (issue 22): every config key is in the schema with a meaning, --help
lists them, modules import each other without cycles, and none grows past the size guide."""
import ast
from pathlib import Path

import pytest

from rlkit.config import load_config, options
from rlkit.schema import SCHEMA, leaves
from tests.conftest import ROOT, run_cli

PACKAGE = ROOT / "rlkit"


def every_config():
    """Every env (with PPO), every algorithm (on a board game, where all run), every model and runner."""
    for env in options("env"):
        yield load_config([f"env={env}"])
    for algo in options("algo"):
        yield load_config(["env=connect_four", f"algo={algo}"])
    for model in options("model"):
        yield load_config(["env=cartpole", f"model={model}"])
    for runner in options("runner"):
        yield load_config([f"runner={runner}", "algo=reinforce"])


def test_every_key_of_every_config_has_a_meaning_in_the_schema():
    seen = set()
    for cfg in every_config():
        seen |= set(leaves(cfg))
    missing = sorted(seen - set(SCHEMA))
    assert not missing, f"keys without a schema entry: {missing}"
    assert not sorted(set(SCHEMA) - seen), "schema entries no config has"
    assert all(len(SCHEMA[k].meaning) > 5 for k in seen)


@pytest.mark.slow
def test_train_help_lists_every_key_with_its_default_and_meaning():
    out = run_cli("rlkit.train", "--help", "env=connect_four", "algo=alphazero", timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    cfg = load_config(["env=connect_four", "algo=alphazero"])
    for key in leaves(cfg):
        assert f"  {key}=" in out.stdout, key
    assert "  algo.sims=48 (0, 100000]\n      tree-search simulations per move" in out.stdout
    bad = run_cli("rlkit.train", "--help", "env=nope", timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown env 'nope'")


def top_level_imports(path: Path) -> set[str]:
    """The rlkit modules a module imports when it is imported (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlkit"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rlkit")}
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def test_no_import_cycles():
    mods = modules()
    graph = {name: {m for m in top_level_imports(path) if m in mods and m != name} for name, path in mods.items()}
    for name in list(graph):  # importing a.b runs a/__init__ first, unless the importer is inside a
        mine = set(_parents(name))
        graph[name] |= {p for m in graph[name] for p in _parents(m) if p in mods and p != name and p not in mine}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join(trail[trail.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def _parents(module: str):
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def test_the_cycle_check_can_fail(tmp_path, monkeypatch):
    (tmp_path / "rlkit").mkdir()
    (tmp_path / "rlkit" / "a.py").write_text("from rlkit.b import x\n")
    (tmp_path / "rlkit" / "b.py").write_text("from rlkit import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "rlkit")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="import cycle: rlkit.a -> rlkit.b -> rlkit.a"):
        test_no_import_cycles()


def test_no_module_over_the_size_guide():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > 300} == {}

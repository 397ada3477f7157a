"""The layout holds: the library's imports run one way (no cycle), and nothing imports a script.

The graph is read from the source with ``ast`` (every import, lazy ones inside functions
included), over the library: the ``soundtrack`` package, the model registry ``network`` and
the layout's fixed modules ``config``, ``AudioDataLoader`` and ``fusion``. Scripts are the
runbook steps and tools in ``scripts/``, the benchmarks in ``benchmarks/`` (their shared
``esc10.py`` is a module of that folder) and ``train.py``.
"""
import ast
import re

import pytest

from conftest import REPO

TOP_MODULES = ("config", "AudioDataLoader", "fusion")


def library_modules():
    """{dotted name: path} of every library module."""
    found = {m: REPO / f"{m}.py" for m in TOP_MODULES}
    for package in ("soundtrack", "network"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported_names(path):
    """Every module name an import statement in `path` names (``from a import b`` gives a and
    a.b, since b may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def graph(modules):
    """{module: set of library modules it imports}."""
    return {m: {n for n in imported_names(p) if n in modules and n != m}
            for m, p in modules.items()}


def cycles(edges):
    """The strongly connected groups of more than one module (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def scripts():
    return sorted([*(REPO / "scripts").glob("*.py"), *(REPO / "benchmarks").glob("bench_*.py"),
                   REPO / "train.py"])


def test_cycle_finder_finds_a_planted_cycle():
    # the check below must be able to fail: a -> b -> c -> a is one group, d stands alone
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_has_no_import_cycle():
    modules = library_modules()
    assert {"soundtrack.training.loop", "soundtrack.envelope.task", "soundtrack.join",
            "soundtrack.records", "network", "fusion"} <= set(modules)
    assert cycles(graph(modules)) == []


def test_no_library_module_imports_a_script():
    script_names = {p.stem for p in scripts()}        # train, predict, bench_esc10, ...
    offenders = {}
    for name, path in library_modules().items():
        text = path.read_text(encoding="utf-8")
        bad = {n for n in imported_names(path) if n.split(".")[0] in script_names}
        if re.search(r"spec_from_file_location|load_script|runpy", text):
            bad.add("a script loaded by path")
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


@pytest.mark.parametrize("path", scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_script_imports_another_script(path):
    script_names = {p.stem for p in scripts()} - {path.stem}
    text = path.read_text(encoding="utf-8")
    assert not {n for n in imported_names(path) if n.split(".")[0] in script_names}
    assert not re.search(r"spec_from_file_location|load_script", text)
    assert "sys.path" not in text, "the project is installed (pip install -e .): no sys.path"


def test_only_the_layout_names_stand_at_the_top():
    allowed = {"scripts", "network", "datalists", "file_lists", "npy_files",
               "video_classification_results", "config.py", "AudioDataLoader.py", "train.py",
               "fusion.py", "requirements.txt", "README.md", "tests", "soundtrack", "Makefile",
               "recipes", "docs", "benchmarks", "pyproject.toml"}
    import subprocess
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout")
    top = {line.split("/")[0] for line in tracked.stdout.splitlines()
           if not line.startswith(".")}
    assert top <= allowed, sorted(top - allowed)

"""The import graph keeps its layers (issue 32): read by ``ast``, every import counted,
those inside functions too.

* ``data_prep`` (DICOM in, converter out) never imports ``mmnpc`` (the models);
* library code (``data_prep``, ``mmnpc``) never imports the scripts above it
  (``tools``, ``benchmarks``, ``experiments``);
* the parts of ``mmnpc`` (its subpackages and top-level modules) import each other
  without a cycle. The package's own ``__init__`` is left out: it imports every part
  so that their modules register with MMEngine.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ('data_prep', 'mmnpc')
SCRIPTS = ('tools', 'benchmarks', 'experiments')


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_names(path: Path, root: Path = REPO) -> set[str]:
    """Every module ``path`` imports (relative imports resolved; ``from a import b``
    gives ``a`` and ``a.b``, since ``b`` may be a module)."""
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    module = module_name(path, root)
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ''
            names.add(name)
            names |= {f'{name}.{alias.name}' for alias in node.names}
    return names


def library_imports() -> dict[str, set[str]]:
    """module -> the first-party modules it imports, for every library module."""
    first_party = LIBRARIES + SCRIPTS
    return {module_name(path): {n for n in imported_names(path) if n.split('.')[0] in first_party}
            for top in LIBRARIES for path in sorted((REPO / top).rglob('*.py'))}


def part(module: str) -> str:
    """The part of ``mmnpc`` a module belongs to: ``mmnpc.inference.grad_cam`` -> ``mmnpc.inference``."""
    return '.'.join(module.split('.')[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path (first node repeated at the end), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) == []
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_imported_names_resolve_relative_and_nested_imports(tmp_path):
    package = tmp_path / 'mmnpc' / 'inference'
    package.mkdir(parents=True)
    source = package / 'x.py'
    source.write_text('from ..evaluation import stats\n'
                      'def f():\n    import tools.demo\n')
    assert imported_names(source, tmp_path) == {'mmnpc.evaluation', 'mmnpc.evaluation.stats',
                                      'tools.demo'}


def test_data_prep_never_imports_mmnpc():
    upward = {m: sorted(n for n in names if n.split('.')[0] == 'mmnpc')
              for m, names in library_imports().items() if m.split('.')[0] == 'data_prep'}
    assert {m: n for m, n in upward.items() if n} == {}


def test_library_code_never_imports_the_scripts():
    upward = {m: sorted(n for n in names if n.split('.')[0] in SCRIPTS)
              for m, names in library_imports().items()}
    assert {m: n for m, n in upward.items() if n} == {}


def test_the_parts_of_mmnpc_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    modules = library_imports()
    parts = {part(m) for m in modules if m.startswith('mmnpc.')}
    for module, names in modules.items():
        if not module.startswith('mmnpc.'):
            continue  # data_prep (checked above) and the package's registering __init__
        for name in names:
            target = part(name)
            if target in parts and target != part(module):
                graph[part(module)].add(target)
    assert 'mmnpc.datasets' in graph['mmnpc.evaluation']  # the scan sees the package's edges
    assert find_cycle(graph) == []


def script_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob('*.py'))


def test_scripts_do_not_edit_sys_path():
    """Scripts import the installed packages (pip install -e .), never through sys.path."""
    edits = [str(path.relative_to(REPO)) for folder in SCRIPTS for path in script_files(folder)
             if 'sys.path' in path.read_text(encoding='utf-8')]
    assert edits == []


def test_experiments_and_tools_do_not_import_each_other():
    """An experiment or a tool is a script: what two of them share lives in the library
    (e.g. mmnpc.runs). Two folders keep private modules beside their scripts:
    tools/_common.py (the MMDetection-style arguments; it must run before anything imports
    matplotlib, which importing mmnpc does) and benchmarks/ (run.py runs one measuring module
    per stage; common.py starts them in child processes)."""
    scripts = {path.stem for folder in ('tools', 'experiments') for path in script_files(folder)
               if not path.stem.startswith('_')}
    assert {'transfer', 'region_comparison', 'demo'} <= scripts
    found = {}
    for folder in ('tools', 'experiments', 'benchmarks'):
        for path in script_files(folder):
            names = {n.split('.')[0] for n in imported_names(path)} & scripts
            names |= {n for n in imported_names(path) if n.split('.')[0] in SCRIPTS}
            if names:
                found[str(path.relative_to(REPO))] = sorted(names)
    assert found == {}


MAX_FUNCTION_LINES = 80


def long_functions(paths, limit: int = MAX_FUNCTION_LINES, root: Path = REPO) -> list[str]:
    """``path:line name (n lines)`` of every function or method longer than ``limit`` lines
    (docstring included)."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    found.append(f'{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)')
    return found


def test_long_functions_finds_the_long_one_and_its_length(tmp_path):
    source = tmp_path / 'x.py'
    source.write_text('def short():\n    pass\n\n\nclass A:\n    def long(self):\n'
                      + '        x = 1\n' * 80)
    assert long_functions([source], 80, tmp_path) == ['x.py:6 long (81 lines)']
    assert long_functions([source], 81, tmp_path) == []


def test_no_function_over_80_lines_outside_tests():
    paths = [path for top in (*LIBRARIES, *SCRIPTS) for path in sorted((REPO / top).rglob('*.py'))]
    assert long_functions(paths) == []


def test_only_the_synthetic_cohort_and_tests_use_the_synthetic_writer():
    """Real outputs (the converter, the exporters of detections) write DICOM through
    data_prep.dicom_write; the synthetic writer (dicom_writer, synth) serves the generator,
    its command and the test helpers."""
    synthetic = {'data_prep.dicom_writer', 'data_prep.synth'}
    allowed = {'data_prep.dicom_writer', 'data_prep.synth', 'data_prep.cli', 'data_prep'}
    users = {m: sorted(names & synthetic) for m, names in library_imports().items()
             if names & synthetic and m not in allowed and '.testing' not in m
             and not m.startswith('mmnpc.testing')}
    assert users == {}
    assert 'data_prep.dicom_write' in library_imports()['mmnpc.export.rtstruct_export']

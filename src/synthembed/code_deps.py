"""The code a stage runs: its script and every library module it imports, directly or through another.

The Snakemake rules take these files as inputs and dvc.yaml lists them as deps, so both engines rerun a
stage when its code changes, and only then.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = "src/synthembed"


def imported_modules(path: Path, library: Path) -> set[str]:
    """Modules of ``library`` that the file at ``path`` imports anywhere in it (inside a function too).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> library = root / "synthembed"
    >>> library.mkdir()
    >>> for name in ("a.py", "b.py"):
    ...     _ = (library / name).write_text("")
    >>> script = root / "script.py"
    >>> _ = script.write_text("import json\\nfrom synthembed import a\\ndef f():\\n    import synthembed.b")
    >>> sorted(imported_modules(script, library))
    ['a', 'b']
    """
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: inside the library
                base = ".".join(filter(None, [library.name, base]))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    parts = [name.split(".") for name in names]
    return {p[1] for p in parts if len(p) > 1 and p[0] == library.name and (library / f"{p[1]}.py").exists()}


def library_closure(script: Path, library: Path) -> set[str]:
    """Every module of ``library`` a script runs: those it imports, those they import, and so on."""
    seen: set[str] = set()
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop(), library) - seen:
            seen.add(module)
            todo.append(library / f"{module}.py")
    return seen


def code_files(script: str, root: str | Path = ".") -> list[str]:
    """The script and the library modules it runs, as paths relative to the project ``root``.

    The package's ``__init__.py`` holds only its version and is left out.

    >>> root = Path(__file__).parents[2]
    >>> code_files("scripts/docs.py", root)  # doctest: +NORMALIZE_WHITESPACE
    ['scripts/docs.py', 'src/synthembed/cli.py', 'src/synthembed/corpus.py', 'src/synthembed/io.py',
     'src/synthembed/pages.py', 'src/synthembed/params.py']
    """
    root = Path(root)
    modules = library_closure(root / script, root / LIBRARY)
    return [script] + [f"{LIBRARY}/{module}.py" for module in sorted(modules)]

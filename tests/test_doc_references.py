"""Docstrings, comments and docs point only to files and modules that exist.

A path is a token starting with one of the repository's top-level folders (`service/db.py`,
`docs/api.md`, `sql/migrations/0003`: a file name's prefix is enough); a bare `name.py` or
`name.md` must be some file of the repository; a module is a dotted name in one of our
packages (`ops.supervisor`, `mlsys.config.Settings`: the module must exist and define the
name). Files a command writes are listed in GENERATED.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from pathlib import Path

from mlsys.config import ROOT

# Written by a command, never committed: (path, the command that writes it).
GENERATED = {"schema/schema.inferred.pbtxt": "make schema-draft"}
PACKAGES = ("mlsys", "ops", "service", "frontend", "pipelines", "training", "error_injection")
DOCS = (".md", ".yml", ".yaml", ".toml", ".sh", ".example", "Makefile", "Dockerfile")
PATH = re.compile(r"(?<![\w./$-])((?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]*[A-Za-z0-9_])")
# A Python file or a document named without its folder (`launch.py`, `ARCHITECTURE.md`).
BARE = re.compile(r"(?<![\w./<>*-])([A-Za-z0-9_-]+\.(?:py|md))\b(?![/(])")
MODULE = re.compile(rf"(?<![\w./])((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+)")


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.split() if (ROOT / f).is_file()]


def prose(path: str) -> list[tuple[int, str]]:
    """(line, text) of the docstrings and comments of a Python file, or of a doc's lines."""
    text = (ROOT / path).read_text(encoding="utf-8", errors="replace")
    if path.endswith(".py"):
        return [
            (tok.start[0], tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT
            or (
                tok.type == tokenize.STRING
                and tok.string.lstrip("rbuRBU").startswith(('"""', "'''"))
            )
        ]
    if path.endswith(DOCS):
        # `# syntax=docker/dockerfile:1` names an image, not a file.
        return [(i, t) for i, t in enumerate(text.splitlines(), 1) if "# syntax=" not in t]
    return []


def defines(module: Path, name: str) -> bool:
    source = module.read_text(encoding="utf-8")
    return (
        re.search(
            rf"^\s*(?:async def|def|class)\s+{name}\b|\b{name}\b\s*[:=]|import .*\b{name}\b",
            source,
            re.M,
        )
        is not None
    )


def module_problem(dotted: str) -> str | None:
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:k])
        source = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if source.is_file():
            if k == len(parts) or defines(source, parts[k]):
                return None
            return f"{'.'.join(parts[:k])} has no module or name {parts[k]}"
    return f"no package {parts[0]}"


def test_docs_and_docstrings_point_to_what_exists():
    files = tracked()
    names = set(files) | {str(Path(f).parent) for f in files}
    tops = {f.split("/")[0] for f in files if "/" in f}
    wrong = []
    for f in files:
        if f == "tests/test_doc_references.py":  # names wrong references on purpose
            continue
        for line, text in prose(f):
            for token in PATH.findall(text):
                token = token.rstrip(".")
                if (
                    token.split("/")[0] not in tops
                    or token in GENERATED
                    or token.rstrip("/") in names
                ):
                    continue
                if not any(n.startswith((token + ".", token + "_", token + "-")) for n in names):
                    wrong.append(f"{f}:{line}: {token}")
            for name in BARE.findall(text):
                if not any(n == name or n.endswith("/" + name) for n in names):
                    wrong.append(f"{f}:{line}: {name}")
            for dotted in MODULE.findall(text):
                if (problem := module_problem(dotted)) is not None:
                    wrong.append(f"{f}:{line}: {dotted} ({problem})")
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_wrong_reference():
    # The two ways a reference goes stale here: a module moved, a file renamed.
    assert module_problem("mlsys.ops") == "mlsys has no module or name ops"
    assert module_problem("ops.supervisor.Service") is None
    assert (
        module_problem("ops.supervisor.Nothing") == "ops.supervisor has no module or name Nothing"
    )
    assert PATH.findall("see `mlsys/pg.py` and docs/api.md") == ["mlsys/pg.py", "docs/api.md"]
    assert BARE.findall("measured (ARCHITECTURE.md), see launch.py") == [
        "ARCHITECTURE.md",
        "launch.py",
    ]
    assert not (ROOT / "mlsys" / "pg.py").exists()

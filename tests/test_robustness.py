"""Nothing lost, nothing let in: what synthembed promises about bad input, faults, hostile documents,
secrets and determinism. Each promise is a test that drives the real stage scripts or the whole DAG.

1. Bad corpus input: every bad row of the case table stops the docs stage with ``file:line: reason``
   (``docs.on_bad_row: error``) or, with ``skip``, is a rejected row with its reason; rows that are
   not malformed (empty, too short or too long, an exact repeat) are always rejected rows; the counts
   add up: read = kept + rejected + not_sampled, at 100,000 documents too.
2. Bad model output (non-JSON, wrong fields or types, empty, looping, another language, prompt
   injection obeyed) is a row with its reason, in queries and then in filtered, never a crash.
3. Faults: a server answering 429, 500, too slowly or closing the connection is retried; a call that
   never succeeds is a row with its reason and is asked again on the next run, while answered calls
   are not. A stage killed with SIGKILL leaves no output, Snakemake reruns it, and the rerun writes
   exactly what an uninterrupted run writes. A write that fails (the disk is full) leaves the previous
   artifact intact. (Killed halfway, the queries stage repeats no finished call: test_generation.py.)
4. Hostile documents: what a document makes the model answer cannot add a column, run anything or
   write outside results/; no code evaluates or unpickles data (a scan of the sources).
5. Secrets: an API key given through the environment is sent to the server and written nowhere.
6. Determinism: Snakemake and DVC runs with the same params and seed write byte-identical data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import copy_project, update_params

GOOD = {
    "_id": "g1",
    "title": "Folding",
    "text": "A good document about protein folding and how it is measured.",
}


def jsonl(*records: dict | str) -> bytes:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return ("\n".join(lines) + "\n").encode()


def stage_command(project: Path, stage: str) -> str:
    """A stage's command line exactly as dvc.yaml (and the Snakefile, tested equal) runs it."""
    command = " ".join(yaml.safe_load((project / "dvc.yaml").read_text())["stages"][stage]["cmd"].split())
    return command.replace("python ", f"{sys.executable} ", 1)


def run_stage(project: Path, stage: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", stage_command(project, stage)], cwd=project, capture_output=True, text=True, **options
    )


@dataclass
class Case:
    """One bad input: its files, the error of the default policy (None: never an error) and, per
    location, the reason of each rejected row (under ``skip``; and always when ``error`` is None)."""

    name: str
    files: dict[str, bytes]
    error: str | None
    rejected: dict[str, str]
    source: str = "jsonl"
    path: str = "c.jsonl"
    kept: int = 1
    changes: dict = field(default_factory=dict)


HUGE = {"_id": "big", "text": "protein " * 625_000}  # 5 MB
CASES = [
    Case(
        "malformed JSON",
        {"c.jsonl": jsonl(GOOD, '{"_id": "x", "text": ')},
        "c.jsonl:2: invalid JSON",
        {"c.jsonl:2": "invalid JSON (Expecting value at column 22)"},
    ),
    Case(
        "a line that is not an object",
        {"c.jsonl": jsonl(GOOD, '["x", "text"]')},
        "c.jsonl:2: expected an object, got list",
        {"c.jsonl:2": "expected an object, got list"},
    ),
    Case(
        "missing id",
        {"c.jsonl": jsonl(GOOD, {"text": "a document without any id at all, long enough"})},
        "c.jsonl:2: missing id",
        {"c.jsonl:2": "missing id (one of _id, doc_id, id)"},
    ),
    Case(
        "id of a wrong type",
        {"c.jsonl": jsonl(GOOD, {"_id": 1.5, "text": "a document whose id is a float, long enough"})},
        "c.jsonl:2: field '_id' must be a string or an integer, got float",
        {"c.jsonl:2": "field '_id' must be a string or an integer, got float"},
    ),
    Case(
        "blank id",
        {"c.jsonl": jsonl(GOOD, {"_id": "  ", "text": "a document whose id is blank, long enough"})},
        "c.jsonl:2: field '_id' is blank",
        {"c.jsonl:2": "field '_id' is blank"},
    ),
    Case(
        "missing text",
        {"c.jsonl": jsonl(GOOD, {"_id": "x", "body": "the text is under another name"})},
        "c.jsonl:2: missing field 'text'",
        {"c.jsonl:2": "missing field 'text'"},
    ),
    Case(
        "text of a wrong type",
        {"c.jsonl": jsonl(GOOD, {"_id": "x", "text": 42})},
        "c.jsonl:2: field 'text' must be a string, got int",
        {"c.jsonl:2": "field 'text' must be a string, got int"},
    ),
    Case(
        "title of a wrong type",
        {"c.jsonl": jsonl(GOOD, {"_id": "x", "title": ["a"], "text": "a document with a list as its title"})},
        "c.jsonl:2: field 'title' must be a string, got list",
        {"c.jsonl:2": "field 'title' must be a string, got list"},
    ),
    Case(
        "empty and whitespace-only texts",
        {"c.jsonl": jsonl(GOOD, {"_id": "e", "text": ""}, {"_id": "w", "text": "  \n\t "})},
        None,
        {"c.jsonl:2": "empty text", "c.jsonl:3": "empty text"},
    ),
    Case(
        "text under min_chars",
        {"c.jsonl": jsonl(GOOD, {"_id": "s", "text": "too short"})},
        None,
        {"c.jsonl:2": "text shorter than 40 characters"},
    ),
    Case(
        "a 5 MB document",
        {"c.jsonl": jsonl(GOOD, HUGE)},
        None,
        {"c.jsonl:2": "text longer than 1000000 characters"},
    ),
    Case(
        "duplicate id, same document",
        {"c.jsonl": jsonl(GOOD, GOOD)},
        None,
        {"c.jsonl:2": "repeated document ('g1')"},
    ),
    Case(
        "duplicate id, other text",
        {"c.jsonl": jsonl(GOOD, GOOD | {"text": "Another document that reuses the id of the first one."})},
        "c.jsonl:2: duplicate doc_id with other text ('g1')",
        {"c.jsonl:2": "duplicate doc_id with other text ('g1')"},
    ),
    Case(
        "non-UTF-8 bytes",
        {"c.jsonl": jsonl(GOOD) + b'{"_id": "x", "text": "caf\xe9 au lait, a Latin-1 line"}\n'},
        "c.jsonl:2: not UTF-8",
        {"c.jsonl:2": "not UTF-8 (invalid continuation byte at byte 25)"},
    ),
    Case(
        "CSV with non-UTF-8 bytes (a quoted field over two lines before it)",
        {
            "c.csv": b'id,text\ng1,"A good document about protein folding,\nwritten on two lines."\n'
            b"x,caf\xe9\n"
        },
        "c.csv:4: not UTF-8",
        {"c.csv:4": "not UTF-8 (byte 0xe9 at character 3)"},
        source="csv",
        path="c.csv",
    ),
    Case(
        "CSV without a text column",
        {"c.csv": b"id,body\nx,the text is under another name\n"},
        "c.csv:2: missing field 'text'",
        {"c.csv:2": "missing field 'text'"},
        source="csv",
        path="c.csv",
        kept=0,
    ),
    Case(
        "Parquet with a wrong-typed column",
        {"c.parquet": b""},  # written by the test: a text column of integers
        "c.parquet: row 1: field 'text' must be a string, got int",
        {"c.parquet: row 1": "field 'text' must be a string, got int"},
        source="parquet",
        path="c.parquet",
        kept=0,
    ),
    Case(
        "unknown file types in a text folder",
        {
            "notes/a.md": b"# Folding\nA good document about protein folding and how it is measured.",
            "notes/scan.pdf": b"%PDF-1.7 binary",
            "notes/.DS_Store": b"\x00\x01",
        },
        "notes/scan.pdf: unsupported file type '.pdf'",
        {"notes/scan.pdf": "unsupported file type '.pdf' (textdir reads .txt and .md)"},
        source="textdir",
        path="notes",
    ),
    Case(
        "a non-UTF-8 file in a text folder",
        {
            "notes/a.md": b"# Folding\nA good document about protein folding and how it is measured.",
            "notes/b.txt": b"caf\xe9 au lait",
        },
        "notes/b.txt: not UTF-8",
        {"notes/b.txt": "not UTF-8 (invalid continuation byte at byte 3)"},
        source="textdir",
        path="notes",
    ),
]


def write_case(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    if case.source == "parquet":
        pl.DataFrame({"doc_id": ["x"], "text": [7]}).write_parquet(folder / case.path)


def docs_project(folder: Path, source: str, path: str, **docs) -> Path:
    return copy_project(
        folder,
        {"docs": {"source": source, "path": str(folder / path), "max_docs": None} | docs},
        folder / "cache",
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_corpus_input(case, tmp_path):
    write_case(case, tmp_path)
    project = docs_project(tmp_path, case.source, case.path)
    for policy in ("error", "skip"):
        update_params(project, {"docs": {"on_bad_row": policy}})
        result = run_stage(project, "docs")
        if policy == "error" and case.error:
            assert result.returncode == 1
            message = result.stderr.strip().splitlines()[-1]
            assert message.split(" ERROR ")[1].startswith(str(tmp_path / case.error.split(":")[0]))
            assert case.error.split(":", 1)[1] in message
            assert "Traceback" not in result.stderr
            assert message in (project / "logs" / "docs.log").read_text()
            continue
        assert result.returncode == 0, result.stderr
        rejected = pl.read_parquet(project / "results" / "docs_rejected.parquet")
        located = {
            loc.removeprefix(f"{tmp_path}/"): r for loc, r in rejected.select("location", "reason").rows()
        }
        assert located == case.rejected
        stats = json.loads((project / "results" / "stats" / "docs.json").read_text())
        assert stats["kept"] == pl.read_parquet(project / "results" / "docs.parquet").height == case.kept
        assert stats["read"] == stats["kept"] + sum(stats["rejected"].values()) + stats["not_sampled"]
        assert sum(stats["rejected"].values()) == len(case.rejected)


def test_unknown_source_type_is_refused_naming_the_params_entry(tmp_path):
    project = docs_project(tmp_path, "xml", "c.xml")
    result = run_stage(project, "docs")
    assert result.returncode == 1
    assert re.search(r"params\.yaml: docs\.source: 'xml' is not one of", result.stderr)


@pytest.mark.slow
def test_hundred_thousand_documents_are_read_and_counted(tmp_path):
    records = [
        {"_id": f"d{i}", "text": f"document number {i} about a topic of its own, long enough"}
        for i in range(100_000)
    ]
    records[10] = {"_id": "d10", "text": 3}
    records[500] = {"_id": "d500", "text": ""}
    (tmp_path / "c.jsonl").write_bytes(jsonl(*records, "{broken"))
    project = docs_project(tmp_path, "jsonl", "c.jsonl", on_bad_row="skip", max_docs=3000)
    result = run_stage(project, "docs")
    assert result.returncode == 0, result.stderr
    stats = json.loads((project / "results" / "stats" / "docs.json").read_text())
    assert stats["read"] == 100_001
    assert stats["rejected"] == {
        "field 'text' must be a string, got int": 1,
        "empty text": 1,
        "invalid JSON": 1,
    }
    assert (stats["kept"], stats["not_sampled"]) == (3000, 96_998)

"""Corpus sources normalised to one schema, plus the evaluation sets they carry.

Documents: doc_id, title, text, lang, domain, source.
Evaluation judgments: eval_set, query_id, query, doc_id, score (one row per judged pair).
"""

from __future__ import annotations

import ast
import bz2
import csv
import gzip
import hashlib
import inspect
import io
import itertools
import json
import lzma
import re
import sysconfig
import textwrap
import tokenize
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import openpyxl
import polars as pl

from synthembed.io import CHUNK_ROWS, InputError, atomic_path, write_parquet_row_groups
from synthembed.pages import (
    ASSET_SUFFIXES,
    MARKDOWN_HEADING,
    READ_SUFFIXES,
    TEXT_SUFFIXES,
    NotAPage,
    UnreadableFile,
    fenced_lines,
    html_text,
    read_page,
)


def passage(title: str | None, text: str) -> str:
    """The text an embedder sees for a document: its title line, then its body.

    >>> passage("json.dumps", "def dumps(obj): ...")
    'json.dumps\\ndef dumps(obj): ...'
    >>> passage("", "body")
    'body'
    """
    return f"{title}\n{text}" if title else text


def passage_column() -> pl.Expr:
    """``passage`` as a polars expression over the title and text columns, named passage."""
    titled = pl.col("title").is_not_null() & (pl.col("title") != "")
    return (
        pl.when(titled)
        .then(pl.concat_str(pl.col("title"), pl.lit("\n"), pl.col("text")))
        .otherwise(pl.col("text"))
        .alias("passage")
    )


def passages(docs: pl.DataFrame) -> list[str]:
    """``passage`` of every row of a frame with title and text columns, in row order.

    >>> passages(pl.DataFrame({"title": ["t", "", None], "text": ["a", "b", "c"]}))
    ['t\\na', 'b', 'c']
    """
    return docs.select(passage_column())["passage"].to_list()


def read_passages(path: str | Path, doc_ids: pl.Series) -> pl.DataFrame:
    """doc_id and passage of the documents of a docs file with one of ``doc_ids``, read as a stream of
    its row groups so only those documents are held.

    >>> import tempfile
    >>> docs = pl.DataFrame({"doc_id": ["a", "b", "c"], "title": ["t", None, ""], "text": ["x", "y", "z"]})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     docs.write_parquet(Path(folder) / "docs.parquet")
    ...     read_passages(Path(folder) / "docs.parquet", pl.Series(["c", "a", "c"])).rows()
    [('a', 't\\nx'), ('c', 'z')]
    """
    return (
        pl.scan_parquet(path)
        .filter(pl.col("doc_id").is_in(doc_ids.unique().implode()))
        .select("doc_id", passage_column())
        .collect(engine="streaming")
    )


DOC_SCHEMA = {
    "doc_id": pl.String,
    "title": pl.String,
    "text": pl.String,
    "lang": pl.String,
    "domain": pl.String,
    "source": pl.String,
}
EVAL_SCHEMA = {
    "eval_set": pl.String,
    "query_id": pl.String,
    "query": pl.String,
    "doc_id": pl.String,
    "score": pl.Int64,
}
REJECT_SCHEMA = {"location": pl.String, "doc_id": pl.String, "reason": pl.String}
# Standard-library parts that are tests, demos or tools rather than documented library code.
STDLIB_EXCLUDED = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "turtledemo",
    "ensurepip",
    "site-packages",
    "dist-packages",
}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class CorpusError(InputError):
    """A bad input row, reported as ``file:line: reason``."""


OPENERS_BY_SUFFIX = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# what reading a damaged or truncated archive (or a file that is not one) raises
UNREADABLE = (OSError, EOFError, zlib.error, lzma.LZMAError)
Line = TypeVar("Line", str, bytes)


def uncompressed(path: Path) -> Path:
    """The name of the file that ``open_binary`` reads out of ``path``: without its compression suffix.

    >>> uncompressed(Path("docs/README.md.gz")), uncompressed(Path("corpus.jsonl"))
    (PosixPath('docs/README.md'), PosixPath('corpus.jsonl'))
    """
    return path.with_suffix("") if path.suffix in OPENERS_BY_SUFFIX else path


def open_binary(path: Path) -> IO[bytes]:
    """A file's bytes, decompressed when its name ends in .gz, .bz2 or .xz (``corpus.jsonl.gz``)."""
    return OPENERS_BY_SUFFIX.get(path.suffix, open)(path, "rb")


def open_text(path: Path, errors: str = "strict") -> io.TextIOWrapper:
    """A file's text as ``open_binary`` reads it: UTF-8 without a leading byte order mark, newlines as
    written (``csv`` reads them)."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors=errors, newline="")


def file_lines(handle: Iterable[Line], path: Path) -> Iterator[Line]:
    """The lines of an open file; a line that cannot be read or decompressed (a truncated or damaged
    archive, a name ending in .gz on a file that is not gzip) stops with its file and line.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "corpus.jsonl.gz"
    >>> _ = path.write_bytes(gzip.compress(b'{"_id": "a"}\\n{"_id": "b"}\\n')[:-12])
    >>> with open_binary(path) as handle:
    ...     list(file_lines(handle, path))
    Traceback (most recent call last):
    ...
    synthembed.corpus.CorpusError: /.../corpus.jsonl.gz:...: cannot be read (Compressed file ended ...)
    """
    lines_read = 0
    try:
        for line in handle:
            lines_read += 1
            yield line
    except UNREADABLE as err:
        raise CorpusError(f"{path}:{lines_read + 1}: cannot be read ({err})") from err


@dataclass
class Corpus:
    """Documents, their evaluation judgments and the rows rejected on the way. ``docs`` may be a
    stream (read and cleaned one document at a time); ``rejected`` fills as it is consumed."""

    docs: Iterable[dict[str, Any]] = field(default_factory=list)
    judgments: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # Documents cut into parts (docs.split_words) and the parts they became; filled as docs is consumed.
    split: Counter = field(default_factory=lambda: Counter(documents=0, parts=0))


@dataclass
class RowPolicy:
    """What to do with a bad row: raise (``error``) or keep it as rejected (``skip``)."""

    on_bad_row: str
    rejected: list[dict[str, Any]]

    def bad(self, location: str, reason: str, doc_id: str | None = None) -> None:
        if self.on_bad_row == "error":
            raise CorpusError(f"{location}: {reason}")
        self.reject(location, reason, doc_id)

    def reject(self, location: str, reason: str, doc_id: str | None = None) -> None:
        """Keep a row that is not malformed, but no document, as rejected whatever the policy."""
        self.rejected.append({"location": location, "doc_id": doc_id, "reason": reason})


def first_sentence(docstring: str) -> str:
    """The first sentence of a docstring's summary paragraph.

    >>> first_sentence("Return the sum of a and b.\\n\\n    More details.")
    'Return the sum of a and b.'
    >>> first_sentence("Serialize obj to a JSON formatted str. Extra.")
    'Serialize obj to a JSON formatted str.'
    """
    paragraph = inspect.cleandoc(docstring).split("\n\n")[0]
    summary = " ".join(line.strip() for line in paragraph.splitlines())
    return SENTENCE_END.split(summary, maxsplit=1)[0].strip()


def function_without_docstring(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The source of a function (decorators included, dedented) with its docstring statement removed."""
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    doc = node.body[0]
    kept = lines[start : doc.lineno - 1] + lines[doc.end_lineno : node.end_lineno]
    return textwrap.dedent("\n".join(kept)).strip()


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, functions) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, functions) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def python_functions(path: Path, module: str, policy: RowPolicy) -> Iterator[tuple[dict[str, Any], str]]:
    """Public functions and methods with a docstring in one Python file; a file this Python cannot
    parse goes to the policy.

    Yields (document, docstring first sentence). The document text is the function's source with the
    docstring removed, so the docstring can serve as an evaluation query without leaking into the corpus.
    """
    try:
        # As Python reads a source file: a UTF-8 byte order mark or a coding declaration says how.
        with path.open("rb") as handle:
            encoding, _ = tokenize.detect_encoding(handle.readline)
        source = path.read_bytes().decode(encoding, errors="replace")
        tree = ast.parse(source)
    except SyntaxError as err:
        # A coding declaration it cannot follow has no line number: the declaration opens the file.
        policy.bad(f"{path}:{err.lineno or 1}", f"not parseable by this Python ({err.msg})")
        return
    lines = source.splitlines()
    seen: set[str] = set()
    for qualname, node in _public_functions(tree):
        docstring = ast.get_docstring(node, clean=False)
        # A docstring-only body leaves no code to retrieve; a repeated name (property setter,
        # platform-specific variant) is the same function for a searcher: the first one stands.
        if not docstring or len(node.body) < 2 or qualname in seen:
            continue
        seen.add(qualname)
        doc = {
            "doc_id": f"{module}.{qualname}",
            "title": f"{module}.{qualname}",
            "text": function_without_docstring(lines, node),
            "line": node.lineno,
        }
        yield doc, first_sentence(docstring)


def stdlib_modules(stdlib_dir: Path) -> Iterator[tuple[Path, str]]:
    """(path, dotted module name) of the public pure-Python modules of a standard library."""
    for path in sorted(stdlib_dir.rglob("*.py")):
        parts = list(path.relative_to(stdlib_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        # Private modules, hidden folders (a project's .venv, .tox), tests and tools hold no library code.
        if not parts or any(p.startswith(("_", ".")) or p in STDLIB_EXCLUDED or "-" in p for p in parts):
            continue
        yield path, ".".join(parts)


MIN_QUERY_WORDS = 3  # "Return self." or "Close." would judge a function by a word any other matches


def read_stdlib(stdlib_dir: Path | None = None, on_bad_row: str = "error") -> Corpus:
    """The default corpus: the running Python's standard library, one document per public function.

    The first sentence of each docstring becomes an evaluation query (set ``stdlib``) for its function
    when it has ``MIN_QUERY_WORDS`` words or more; the function is a document either way.
    """
    stdlib_dir = stdlib_dir or Path(sysconfig.get_paths()["stdlib"])
    corpus = Corpus()
    policy = RowPolicy(on_bad_row, corpus.rejected)
    for path, module in stdlib_modules(stdlib_dir):
        for doc, sentence in python_functions(path, module, policy):
            line = doc.pop("line")
            corpus.docs.append(
                {**doc, "domain": "code", "source": f"stdlib:{path.relative_to(stdlib_dir)}:{line}"}
            )
            if len(sentence.split()) >= MIN_QUERY_WORDS:
                corpus.judgments.append(
                    {
                        "eval_set": "stdlib",
                        "query_id": doc["doc_id"],
                        "query": sentence,
                        "doc_id": doc["doc_id"],
                        "score": 1,
                    }
                )
    return corpus


ID_FIELDS = ("_id", "doc_id", "id")
# the sources whose field names docs.fields gives
RECORD_SOURCES = ("jsonl", "json", "parquet", "csv", "xlsx")
# the files a record source reads in a folder (a dataset in shards, train-00000-of-00004.parquet)
RECORD_SUFFIXES = {
    "jsonl": (".jsonl",),
    "json": (".json",),
    "parquet": (".parquet",),
    "csv": (".csv", ".tsv"),
    "xlsx": (".xlsx",),
}
# the record sources read through ``open_binary``, whose files may be compressed (``corpus.jsonl.gz``)
COMPRESSIBLE_SOURCES = ("jsonl", "json", "csv")


@dataclass(frozen=True)
class RecordFields:
    """Which fields of a record (JSON Lines, a JSON array, Parquet, CSV, Excel) hold a document's id,
    title, text and domain (``docs.fields``): by default BEIR's names and ``domain``; a null id is the
    first of ``ID_FIELDS`` a record has, a null title or domain means none."""

    id: str | None = None
    title: str | None = "title"
    text: str = "text"
    domain: str | None = "domain"

    @property
    def ids(self) -> tuple[str, ...]:
        return ID_FIELDS if self.id is None else (self.id,)


def field_value(record: dict[str, Any], name: str) -> tuple[bool, Any]:
    """Whether a record has the field ``name``, and its value: a key of the record, else a path of keys
    through its nested objects (``content.rendered``: where a WordPress export holds a post's HTML).

    >>> field_value({"content": {"rendered": "<p>Hi</p>"}}, "content.rendered")
    (True, '<p>Hi</p>')
    >>> field_value({"a.b": 1}, "a.b"), field_value({"a": 1}, "a.b")
    ((True, 1), (False, None))
    """
    if name in record:
        return True, record[name]
    value: Any = record
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _record_to_doc(
    record: Any,
    location: str,
    policy: RowPolicy,
    source: str,
    fields: RecordFields = RecordFields(),
    text_format: str = "plain",
) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        policy.bad(location, f"expected an object, got {type(record).__name__}")
        return None
    key, doc_id = next(
        ((k, v) for k in fields.ids if (v := field_value(record, k)[1]) is not None), ("", None)
    )
    if doc_id is None:
        named = f"field '{fields.id}'" if fields.id else f"one of {', '.join(ID_FIELDS)}"
        policy.bad(location, f"missing id ({named})")
        return None
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        policy.bad(location, f"field '{key}' must be a string or an integer, got {type(doc_id).__name__}")
        return None
    if not doc_id.strip():
        policy.bad(location, f"field '{key}' is blank")
        return None
    has_text, text = field_value(record, fields.text)
    if not has_text:
        policy.bad(location, f"missing field '{fields.text}'", doc_id)
        return None
    if isinstance(text, list) and all(isinstance(paragraph, str) for paragraph in text):
        # a text held as its paragraphs (KILT's Wikipedia): one after the other
        text = "\n\n".join(paragraph.strip() for paragraph in text if paragraph.strip())
    title = field_value(record, fields.title)[1] if fields.title else None
    domain = field_value(record, fields.domain)[1] if fields.domain else None
    for name, value in ((fields.text, text), (fields.title, title), (fields.domain, domain)):
        if value is not None and not isinstance(value, str):
            kinds = "a string or a list of strings" if name == fields.text else "a string"
            policy.bad(location, f"field '{name}' must be {kinds}, got {type(value).__name__}", doc_id)
            return None
    if text_format == "html":  # a help centre's or a CMS's export: the text a reader of the page sees
        try:
            text, title = (html_text(value)[1] if value else value for value in (text, title))
        except NotAPage as err:
            policy.reject(location, str(err), doc_id)
            return None
    # A null text (a missing value of a Parquet column, JSON null) is an empty one; a record's own
    # domain ("code" for a function in a corpus of prose) labels it unless it is empty.
    text, title, domain = text or "", title or "", domain or None
    if not text.strip() and title.strip():
        # A title-only record (a paper without an abstract in TREC-COVID, a catalog entry) is a document
        # of its title, which is all an embedder would read of it.
        title, text = "", title
    return {"doc_id": doc_id, "title": title, "text": text, "domain": domain, "source": source}


def read_jsonl_records(path: Path, policy: RowPolicy) -> Iterator[tuple[str, Any]]:
    """(``file:line``, parsed object) for each non-blank line; bad JSON goes to the policy."""
    with open_binary(path) as handle:
        for number, raw in enumerate(file_lines(handle, path), start=1):
            location = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig")  # a byte order mark opens some editors' files
            except UnicodeDecodeError as err:
                policy.bad(location, f"not UTF-8 ({err.reason} at byte {err.start})")
                continue
            if not line.strip():
                continue
            try:
                yield location, json.loads(line.rstrip("\r\n"))  # so an error's column is on this line
            except json.JSONDecodeError as err:
                policy.bad(location, f"invalid JSON ({err.msg} at column {err.colno})")


def read_json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(``file: record N``, record) for each record of a JSON file that holds one array of them, as an
    export or an API dump does (the first is record 1). The file is parsed whole: a corpus larger than
    memory belongs in JSON Lines. A file that is not such an array stops the stage whatever the policy:
    no record of it can be told apart."""
    try:
        with open_binary(path) as handle:
            content = json.loads(handle.read().decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
    except UNREADABLE as err:
        raise CorpusError(f"{path}: cannot be read ({err})") from err
    if not isinstance(content, list):
        found = (
            f"an object with keys {sorted(content)}" if isinstance(content, dict) else type(content).__name__
        )
        raise CorpusError(f"{path}: expected a JSON array of records, got {found}")
    for number, record in enumerate(content, start=1):
        yield f"{path}: record {number}", record


def not_utf8(text: str) -> str | None:
    """Why ``text`` (decoded with surrogateescape) is not UTF-8, or None when it is.

    >>> not_utf8(b"caf\\xe9".decode("utf-8", "surrogateescape"))
    'not UTF-8 (byte 0xe9 at character 3)'
    >>> not_utf8("café") is None
    True
    """
    for position, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return f"not UTF-8 (byte {ord(char) - 0xDC00:#x} at character {position})"
    return None


def read_parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Rows of a Parquet file as dicts, located by row number (the first is row 1)."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several kinds for a file that is not Parquet
        raise CorpusError(f"{path}: not a readable Parquet file ({err})") from None
    # a row group at a time: memory follows the group, not the file
    rows = (row for group in range(table.num_row_groups) for row in table.read_row_group(group).to_pylist())
    for number, row in enumerate(rows, start=1):
        yield f"{path}: row {number}", row


def names_documents(columns: list[str], fields: RecordFields) -> bool:
    """Whether a header names an id column and the text column of ``fields``.

    >>> names_documents(["sku", "name", "description"], RecordFields(id="sku", text="description"))
    True
    >>> names_documents(["_id", "title"], RecordFields()), names_documents(["About"], RecordFields())
    (False, False)
    """
    return fields.text in columns and any(name in columns for name in fields.ids)


def sheet_records(
    location: str, header: list[str], rows: Iterator[tuple[Any, ...]], policy: RowPolicy
) -> Iterator[tuple[str, Any]]:
    """The rows under a sheet's header as dicts, located ``location, row N`` as Excel numbers them, each
    cell as text, as a CSV export holds it; empty rows are skipped, and a row with a value in a column
    without a name goes to the policy."""
    for number, values in enumerate(rows, start=2):
        cells = [value if value is None or isinstance(value, str) else str(value) for value in values]
        if all(cell is None for cell in cells):
            continue
        unnamed = sum(cell is not None for name, cell in itertools.zip_longest(header, cells) if not name)
        row = f"{location}, row {number}"
        if unnamed:
            policy.bad(row, f"{unnamed} value(s) in columns without a name in the header row")
            continue
        yield row, {name: cell for name, cell in zip(header, cells, strict=False) if name}


def read_xlsx_records(
    path: Path, policy: RowPolicy, fields: RecordFields = RecordFields()
) -> Iterator[tuple[str, Any]]:
    """Rows of an Excel workbook (``sheet_records``, located ``file: sheet S, row N``) from every sheet
    whose first row names an id column and the text column of ``fields`` (``names_documents``), in the
    workbook's order. Another sheet (a cover sheet, notes) is a rejected row naming its columns, and a
    workbook without a sheet of documents stops. Sheets are read a row at a time: memory does not grow
    with them."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises several kinds for a file that is not a workbook
        raise CorpusError(f"{path}: not a readable Excel workbook ({type(err).__name__}: {err})") from None
    try:
        other_sheets = []
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            header = ["" if name is None else str(name).strip() for name in next(rows, ())]
            if names_documents(header, fields):
                yield from sheet_records(f"{path}: sheet {sheet.title}", header, rows, policy)
                continue
            named = ", ".join(name for name in header if name) or "nothing"
            other_sheets.append(f"sheet {sheet.title}: {named}")
            policy.reject(f"{path}: sheet {sheet.title}", f"no documents: its first row names {named}")
        if len(other_sheets) == len(workbook.worksheets):
            ids = f"'{fields.id}'" if fields.id else f"one of {', '.join(ID_FIELDS)}"
            raise CorpusError(
                f"{path}: no sheet's first row names an id column ({ids}) and the text column"
                f" ('{fields.text}'; docs.fields names them): {'; '.join(other_sheets)}"
            )
    finally:
        workbook.close()


CSV_DELIMITERS = (",", "\t", ";", "|")


def csv_delimiter(header: str, fields: RecordFields = RecordFields()) -> str:
    """The delimiter of a CSV file, from its header line: the first of comma, tab, semicolon (a
    spreadsheet's export where the comma is the decimal mark) and bar that makes the header name an id
    column and a text column; a comma when none does, so that the rows say what is missing.

    >>> csv_delimiter("id;title;text"), csv_delimiter("_id\\ttext"), csv_delimiter("id;body")
    (';', '\\t', ',')
    >>> csv_delimiter("sku;name;description", RecordFields(id="sku", text="description"))
    ';'
    """
    for delimiter in CSV_DELIMITERS:
        if names_documents(next(csv.reader([header], delimiter=delimiter), []), fields):
            return delimiter
    return ","


def read_csv_records(
    path: Path, policy: RowPolicy, fields: RecordFields = RecordFields()
) -> Iterator[tuple[str, Any]]:
    """Rows of a CSV file as dicts, located by the line they end on (the header is line 1); a row with
    more fields than the header, or bytes that are not UTF-8, goes to the policy. The delimiter is
    ``csv_delimiter``'s; a byte order mark (a spreadsheet's "CSV UTF-8") is not part of the header."""
    with open_text(path, errors="surrogateescape") as handle:
        lines = file_lines(handle, path)
        header = next(lines, "")
        reader = csv.DictReader(itertools.chain([header], lines), delimiter=csv_delimiter(header, fields))
        for row in reader:
            location = f"{path}:{reader.line_num}"
            if None in row:  # DictReader keeps the fields past the header's under the key None
                policy.bad(
                    location, f"{len(row[None])} more field(s) than the header's {len(reader.fieldnames)}"
                )
                continue
            reason = next((r for r in map(not_utf8, [*row.keys(), *map(str, row.values())]) if r), None)
            if reason:
                policy.bad(location, reason)
                continue
            yield location, row


def folder_files(folder: Path) -> list[Path]:
    """The files under a folder, in order of their paths, but hidden files and folders (.DS_Store, .git),
    which hold no documents."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def record_files(folder: Path, source: str, policy: RowPolicy) -> list[Path]:
    """The files under a folder that a record source reads, in order of their paths: those named with its
    suffix (``RECORD_SUFFIXES``; compressed too, for the ``COMPRESSIBLE_SOURCES``). Another file (a
    dataset's README or licence) is a rejected row; a folder without one of them stops."""
    suffixes = RECORD_SUFFIXES[source]
    files = []
    for path in folder_files(folder):
        if (uncompressed(path) if source in COMPRESSIBLE_SOURCES else path).suffix in suffixes:
            files.append(path)
        else:
            policy.reject(str(path), f"not a {' or '.join(suffixes)} file (docs.source: {source})")
    if not files:
        raise CorpusError(f"{folder}: no {' or '.join(suffixes)} file in the folder (docs.source: {source})")
    return files


def read_text_folder(folder: Path, policy: RowPolicy) -> Iterator[tuple[str, Any]]:
    """One record per page of a folder (``read_page``; a page compressed as ``open_binary`` reads,
    ``README.md.gz``, is read as its page), titled by the file's name where the page has no title. An
    asset beside the pages (an image, a font, a stylesheet) is a rejected row whatever the policy; a
    file of another type, or one that cannot be read as its type says, is a bad row.
    """
    for path in folder_files(folder):
        page = uncompressed(path)
        if page.suffix.lower() in ASSET_SUFFIXES:  # no text to read, and no mistake: rejected, not bad
            policy.reject(str(path), f"an asset, not a page ('{page.suffix}')")
            continue
        if page.suffix not in TEXT_SUFFIXES:
            kind = path.name.removeprefix(page.stem)  # '.json.gz' of a compressed file
            reads = f"textdir reads {READ_SUFFIXES}, each plain or compressed: {', '.join(OPENERS_BY_SUFFIX)}"
            policy.bad(str(path), f"unsupported file type '{kind or path.name}' ({reads})")
            continue
        try:
            with open_binary(path) as handle:
                data = handle.read()
        except UNREADABLE as err:
            policy.bad(str(path), f"cannot be read ({err})")
            continue
        try:
            title, text = read_page(page.suffix, data)
        except UnreadableFile as err:
            policy.bad(str(path) if err.line is None else f"{path}:{err.line}", str(err))
            continue
        except NotAPage as err:
            policy.reject(str(path), str(err), str(path.relative_to(folder)))
            continue
        yield str(path), {"doc_id": str(path.relative_to(folder)), "title": title or page.stem, "text": text}


@dataclass
class EvalSet:
    """A real evaluation set: queries, their relevant documents, and the corpus they are searched in."""

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    relevant: dict[str, set[str]]


def beir_file(folder: Path, name: str) -> Path:
    """``folder/name`` or, where only that exists, its compressed copy (``corpus.jsonl.gz``, as BEIR's
    sets on the Hugging Face Hub come)."""
    candidates = [folder / f"{name}{suffix}" for suffix in ("", *OPENERS_BY_SUFFIX)]
    return next((path for path in candidates if path.exists()), candidates[0])


def read_beir_set(folder: str | Path, split: str = "dev", name: str | None = None) -> EvalSet:
    """One split of a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv, each plain or
    compressed: ``beir_file``) as an eval set over its whole corpus; only judged queries with a positive
    score are kept. Any bad line stops with an error
    naming the file and line, a repeated document or query id included (the later text would silently
    replace the earlier): an eval set is never silently other than its files say.
    """
    folder = Path(folder)
    qrels = beir_file(folder, f"qrels/{split}.tsv")
    if not qrels.exists():
        raise CorpusError(f"{qrels}: no such qrels split in BEIR folder {folder}")
    strict = RowPolicy("error", [])
    corpus = {}
    for location, record in read_jsonl_records(beir_file(folder, "corpus.jsonl"), strict):
        doc = _record_to_doc(record, location, strict, location)
        if doc["doc_id"] in corpus:
            raise CorpusError(f"{location}: repeated document id {doc['doc_id']!r}")
        corpus[doc["doc_id"]] = passage(doc["title"], doc["text"])
    queries = {}
    for location, record in read_jsonl_records(beir_file(folder, "queries.jsonl"), strict):
        if not isinstance(record, dict) or "_id" not in record or not isinstance(record.get("text"), str):
            raise CorpusError(f"{location}: a query needs '_id' and a string 'text'")
        query_id = str(record["_id"])
        if query_id in queries:
            raise CorpusError(f"{location}: repeated query id {query_id!r}")
        queries[query_id] = record["text"]
    relevant: dict[str, set[str]] = {}
    with open_text(qrels) as handle:
        reader = csv.reader(file_lines(handle, qrels), delimiter="\t")
        header = next(reader, [])  # an empty file fails the header check below
        if header[:2] != ["query-id", "corpus-id"]:
            raise CorpusError(f"{qrels}:1: expected header 'query-id corpus-id score', got {header}")
        for number, row in enumerate(reader, start=2):
            if (
                len(row) != 3
                or row[0] not in queries
                or row[1] not in corpus
                or not row[2].lstrip("-").isdigit()
            ):
                raise CorpusError(f"{qrels}:{number}: bad judgment {row!r}")
            if int(row[2]) > 0:
                relevant.setdefault(row[0], set()).add(row[1])
    judged = {q: queries[q] for q in sorted(relevant)}
    return EvalSet(name or folder.name, corpus, judged, relevant)


def records_for(
    source: str, path: Path, policy: RowPolicy, fields: RecordFields
) -> Iterable[tuple[str, Any]]:
    if not path.exists():
        raise CorpusError(f"{path}: corpus source '{source}' not found")
    if source in RECORD_SOURCES and path.is_dir():  # its files one after the other
        files = record_files(path, source, policy)
        return itertools.chain.from_iterable(records_for(source, file, policy, fields) for file in files)
    if source == "jsonl":
        return read_jsonl_records(path, policy)
    if source == "json":
        return read_json_records(path)
    if source == "csv":
        return read_csv_records(path, policy, fields)
    if source == "xlsx":
        return read_xlsx_records(path, policy, fields)
    if source == "parquet":
        return read_parquet_records(path)
    if source == "textdir":
        return read_text_folder(path, policy)
    if source == "beir":
        corpus = beir_file(path, "corpus.jsonl")
        if not corpus.exists():
            raise CorpusError(f"{corpus}: no corpus in BEIR folder {path}")
        return read_jsonl_records(corpus, policy)
    raise CorpusError(f"{path}: unknown corpus source '{source}'")


def read_corpus(
    source: str,
    path: str | None,
    on_bad_row: str = "error",
    fields: RecordFields = RecordFields(),
    text_format: str = "plain",
) -> Corpus:
    """Read any supported source into documents (not yet cleaned) and, for the stdlib source, its
    evaluation judgments; the documents of a file source come as a stream. ``fields`` names the fields of
    a record of the ``RECORD_SOURCES``, whose text and title are HTML where ``text_format`` is ``html``
    (read as a page is: ``html_text``)."""
    if source == "stdlib":
        return read_stdlib(Path(path) if path else None, on_bad_row)
    if path is None:
        raise CorpusError(f"docs.path is required for source '{source}'")
    corpus = Corpus()
    policy = RowPolicy(on_bad_row, corpus.rejected)
    if source not in RECORD_SOURCES:
        # a BEIR corpus has BEIR's names and plain text, a folder's records ours and Markdown
        fields, text_format = RecordFields(), "plain"
    records = records_for(source, Path(path), policy, fields)
    documents = (
        _record_to_doc(record, location, policy, f"{source}:{location}", fields, text_format)
        for location, record in records
    )
    corpus.docs = (doc for doc in documents if doc is not None)
    return corpus


def text_blocks(text: str) -> list[str]:
    """The paragraphs of a text: runs of lines between blank lines. A Markdown heading starts a block,
    and a fenced code block stays in one whatever blank lines it holds.

    >>> text_blocks("# Intro\\nSome text.\\n\\nMore.\\n```\\na = 1\\n\\nb = 2\\n```\\n\\n\\nEnd.")
    ['# Intro\\nSome text.', 'More.\\n```\\na = 1\\n\\nb = 2\\n```', 'End.']
    """
    blocks, lines = [], []
    for line, fenced in fenced_lines(text):
        if not fenced and (not line.strip() or MARKDOWN_HEADING.match(line)) and lines:
            blocks.append("\n".join(lines))
            lines = []
        if line.strip() or fenced:
            lines.append(line)
    if lines:
        blocks.append("\n".join(lines))
    return blocks


def _packed(units: list[str], max_words: int, separator: str, first_words: int) -> list[str]:
    """Units joined greedily into pieces of at most ``max_words`` words (the first of at most
    ``first_words``); a unit longer than that is cut between words."""
    pieces, current, count = [], [], 0

    def budget() -> int:
        return first_words if not pieces else max_words

    for unit in units:
        words = unit.split()
        if current and count + len(words) > budget():
            pieces.append(separator.join(current))
            current, count = [], 0
        while len(words) > budget():
            cut = budget()
            pieces.append(" ".join(words[:cut]))
            words = words[cut:]
        if words:
            current.append(unit if len(words) == len(unit.split()) else " ".join(words))
            count += len(words)
    if current:
        pieces.append(separator.join(current))
    return pieces


def split_text(text: str, max_words: int) -> list[str]:
    """A long text as parts of at most ``max_words`` words, cut where it is least harmful: between
    paragraphs and before a Markdown heading; a paragraph that does not fit between its lines, or its
    sentences where it is one line, and only as a last resort between words. A heading stays with the
    paragraph after it; outer headings that do not fit with it (a title before its first section) make a
    part of their own. A text within the limit comes back whole; no word is lost or reordered.

    >>> split_text("# A\\n\\nOne two three.\\n\\n## B\\n\\nFour five. Six seven eight nine.", 5)
    ['# A\\n\\nOne two three.', '## B\\n\\nFour five.', 'Six seven eight nine.']
    >>> split_text("short enough", 5)
    ['short enough']
    """
    if len(text.split()) <= max_words:
        return [text]
    parts, current, count = [], [], 0
    for block in text_blocks(text):
        words = len(block.split())
        held_headings = all(MARKDOWN_HEADING.match(b) and "\n" not in b for b in current)
        starts_section = MARKDOWN_HEADING.match(block) is not None
        if current and not held_headings and (count + words > max_words or starts_section):
            parts.append("\n\n".join(current))
            current, count = [], 0
        elif current and count + words > max_words and (words <= max_words or count >= max_words):
            # Headings held before a paragraph they do not fit with: the inner ones that fit stay with it,
            # the outer ones make a part of their own (every part keeps the document's title anyway).
            keep = len(current)
            while keep and sum(len(b.split()) for b in current[-keep:]) + words > max_words:
                keep -= 1
            parts.append("\n\n".join(current[: len(current) - keep]))
            current = current[len(current) - keep :]
            count = sum(len(b.split()) for b in current)
        if count + words <= max_words:
            current.append(block)
            count += words
            continue
        # The paragraph does not fit: cut it, its first piece after the headings held (if any).
        lines = block.splitlines()
        units, separator = (lines, "\n") if len(lines) > 1 else (SENTENCE_END.split(block), " ")
        pieces = _packed(units, max_words, separator, max_words - count)
        parts.extend(["\n\n".join([*current, pieces[0]]), *pieces[1:-1]])
        current, count = [pieces[-1]], len(pieces[-1].split())
    if current:
        parts.append("\n\n".join(current))
    return parts


def split_document(doc: dict[str, Any], max_words: int | None) -> list[dict[str, Any]]:
    """A document longer than ``max_words`` words as parts ``<doc_id>#1``, ``#2``, ... with its title;
    code is never split (half a function answers no query); None keeps every document whole."""
    if max_words is None or doc["domain"] == "code":
        return [doc]
    parts = split_text(doc["text"], max_words)
    if len(parts) == 1:
        return [doc]
    return [doc | {"doc_id": f"{doc['doc_id']}#{k}", "text": part} for k, part in enumerate(parts, start=1)]


def clean_documents(
    corpus: Corpus,
    *,
    min_chars: int,
    on_bad_row: str,
    lang: str,
    domain: str | None,
    max_chars: int | None = None,
    split_words: int | None = None,
) -> Corpus:
    """Drop what cannot be a training document, each as a rejected row with its reason; fill lang/domain;
    split documents longer than ``split_words`` words into parts (``split_document``), counted in the
    returned corpus's ``split``. The checks below apply to each part.

    An id seen before with other text is bad input (follows ``on_bad_row``). Always rejected rows, as
    they are not malformed: a repeat of the same document, an empty or whitespace-only text, a text under
    ``min_chars`` or over ``max_chars`` (None: no limit). The documents stay a stream: a repeat is
    recognised by a digest of its title and text, not by keeping them.
    """
    policy = RowPolicy(on_bad_row, corpus.rejected)

    def filled_and_split() -> Iterator[dict[str, Any]]:
        for doc in corpus.docs:
            parts = split_document(
                {**doc, "lang": lang, "domain": domain or doc.get("domain") or "general"}, split_words
            )
            if len(parts) > 1:
                result.split.update(documents=1, parts=len(parts))
            yield from parts

    def cleaned() -> Iterator[dict[str, Any]]:
        seen: dict[str, bytes] = {}
        for doc in filled_and_split():
            location, doc_id, text = doc["source"].split(":", 1)[-1], doc["doc_id"], doc["text"]
            digest = hashlib.blake2b(f"{doc['title']}\0{text}".encode(), digest_size=16).digest()
            reason = None
            if doc_id in seen and seen[doc_id] != digest:
                policy.bad(location, f"duplicate doc_id with other text ({doc_id!r})", doc_id)
                continue
            if doc_id in seen:
                reason = f"repeated document ({doc_id!r})"
            elif not text.strip():
                reason = "empty text"
            elif len(text.strip()) < min_chars:
                reason = f"text shorter than {min_chars} characters"
            elif max_chars is not None and len(text) > max_chars:
                reason = f"text longer than {max_chars} characters"
            if reason:
                corpus.rejected.append({"location": location, "doc_id": doc_id, "reason": reason})
                continue
            seen[doc_id] = digest
            yield doc

    result = Corpus(cleaned(), corpus.judgments, corpus.rejected)
    return result


def corpus_from_params(cfg: dict[str, Any]) -> Corpus:
    """The corpus the params' ``docs`` group names, read and cleaned (and split) as the group says."""
    return clean_documents(
        read_corpus(
            cfg["source"], cfg["path"], cfg["on_bad_row"], RecordFields(**cfg["fields"]), cfg["text_format"]
        ),
        min_chars=cfg["min_chars"],
        max_chars=cfg["max_chars"],
        split_words=cfg["split_words"],
        on_bad_row=cfg["on_bad_row"],
        lang=cfg["lang"],
        domain=cfg["domain"],
    )


def spill_documents(docs: Iterable[dict[str, Any]], folder: Path, chunk_rows: int = CHUNK_ROWS) -> int:
    """Write ``docs`` into ``folder`` as numbered Parquet files of ``chunk_rows`` documents; how many."""
    folder.mkdir(parents=True, exist_ok=True)
    count, chunk = 0, []
    for doc in itertools.chain(docs, [None]):
        if doc is not None:
            chunk.append(doc)
        if chunk and (doc is None or len(chunk) == chunk_rows):
            pl.DataFrame(chunk, schema=DOC_SCHEMA).write_parquet(
                folder / f"{count // chunk_rows:06d}.parquet"
            )
            count, chunk = count + len(chunk), []
    return count


def sampled_ids(folder: Path, max_docs: int | None, seed: int) -> pl.Series:
    """The ids of a seeded sample of at most ``max_docs`` spilled documents, sorted; only the id column
    is read."""
    files = sorted(folder.glob("*.parquet"))
    ids = (
        pl.scan_parquet(files).select("doc_id").collect()
        if files
        else pl.DataFrame(schema={"doc_id": pl.String})
    )
    if max_docs is not None and ids.height > max_docs:
        ids = ids.sample(n=max_docs, seed=seed)
    return ids["doc_id"].sort()


def sorted_documents(folder: Path, ids: pl.Series, chunk_rows: int = CHUNK_ROWS) -> Iterator[pl.DataFrame]:
    """The spilled documents whose id is in ``ids`` (sorted), in id order, one range of ``chunk_rows``
    ids at a time: memory holds one range, not the corpus."""
    files = sorted(folder.glob("*.parquet"))
    for start in range(0, len(ids), chunk_rows):
        in_range = pl.col("doc_id").is_in(ids[start : start + chunk_rows].implode())
        yield pl.scan_parquet(files).filter(in_range).collect(engine="streaming").sort("doc_id")


def write_documents(
    corpus: Corpus, path: str | Path, max_docs: int | None, seed: int
) -> tuple[int, pl.Series]:
    """Consume the document stream into ``path``: a seeded sample of at most ``max_docs``, in doc_id
    order, with memory bounded by the chunk size (documents are spilled beside ``path`` first, in the
    output's temporary folder). Returns how many documents there were before sampling, and the sampled
    ids."""
    with atomic_path(path) as target:
        spilled = target.parent / "spilled"
        count = spill_documents(corpus.docs, spilled)
        ids = sampled_ids(spilled, max_docs, seed)
        write_parquet_row_groups(sorted_documents(spilled, ids), DOC_SCHEMA, target)
    return count, ids


def corpus_frames(
    judgments: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Judgments and rejected rows as typed DataFrames."""
    return (
        pl.DataFrame(judgments, schema=EVAL_SCHEMA).sort("eval_set", "query_id", "doc_id"),
        pl.DataFrame(rejected, schema=REJECT_SCHEMA),
    )


def judgments_of(
    judgments: list[dict[str, Any]], doc_ids: set[str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The judgments whose document is among ``doc_ids``, and per eval set the number of queries left
    with none (every judged document rejected or not sampled), so they are counted, not lost silently.

    >>> judged = [{"eval_set": "s", "query_id": "q1", "doc_id": "a"}, {"eval_set": "s", "query_id": "q1",
    ...           "doc_id": "b"}, {"eval_set": "s", "query_id": "q2", "doc_id": "c"}]
    >>> kept, dropped = judgments_of(judged, {"a"})
    >>> [j["doc_id"] for j in kept], dropped
    (['a'], {'s': 1})
    """
    kept = [j for j in judgments if j["doc_id"] in doc_ids]
    left = {(j["eval_set"], j["query_id"]) for j in kept}
    lost = {(j["eval_set"], j["query_id"]) for j in judgments} - left
    return kept, dict(Counter(eval_set for eval_set, _ in sorted(lost)))


def corpus_stats(
    read: int, kept: int, judgments: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> dict[str, Any]:
    """Counts for metrics: read = kept + rejected (+ not sampled, added by the caller)."""
    queries = {(j["eval_set"], j["query_id"]) for j in judgments}
    return {
        "read": read,
        "rejected": dict(Counter(r["reason"].split(" (")[0] for r in rejected)),
        "kept": kept,
        "eval_queries": dict(Counter(eval_set for eval_set, _ in queries)),
    }

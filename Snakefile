# synthembed: docs -> configs -> queries -> filtered -> balanced -> negatives -> model -> metrics
# The same command lines are the stages of dvc.yaml; tests/test_engines.py fails when the two drift apart.
from snakemake.utils import min_version, validate

from synthembed.params import SCHEMA_PATH, eval_sets_fingerprint, source_fingerprint

min_version("9.0")


configfile: "params.yaml"


validate(config, str(SCHEMA_PATH))


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/curate.smk"
include: "rules/train.smk"


rule all:
    default_target: True
    input:
        "results/metrics.json",

# synthembed: docs -> configs -> queries -> filtered -> balanced -> negatives -> model -> metrics
# The same command lines are the stages of dvc.yaml; tests/test_engines.py fails when the two drift apart.
from snakemake.utils import min_version, validate

from synthembed.params import SCHEMA_PATH, source_fingerprint

min_version("9.0")


configfile: "params.yaml"


validate(config, str(SCHEMA_PATH))


def groups(*names):
    """The params groups a rule depends on: a change to any of them reruns it."""
    return {name: config[name] for name in names}


include: "rules/generate.smk"
include: "rules/curate.smk"
include: "rules/train.smk"


rule all:
    input:
        "results/metrics.json",
    default_target: True

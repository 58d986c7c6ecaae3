import os

from synthembed.code_deps import code_files


def groups(*names):
    """Params groups of a step, as its params: editing any of them reruns the step."""
    return {name: config[name] for name in names}


def keys(group, *names):
    """Single params of a group, named as in dvc.yaml: editing another key of the group leaves the step
    alone."""
    return {f"{group}.{name}": config[group][name] for name in names}


def shards_dir(wildcards, input):
    """The folder a gather rule's shard files lie in: results/shards/<stage> on a local run;
    with a storage provider (profiles/kubernetes), a copy under .snakemake/storage/."""
    return os.path.dirname(input.shards[0])


def code(script):
    """A script and the library modules it imports, as a step's inputs. Editing any of them reruns the
    step, as DVC reruns the stage that lists them as deps. Read from the working copy, like project_file.
    """
    return local(code_files(script, workflow.basedir))


def project_file(path):
    """A file that ships with the project (a prompt): read from the working copy, never from a storage
    provider, so cluster profiles that move results through storage still find it."""
    return local(path)


wildcard_constraints:
    shard=r"\d+",

def groups(*names):
    """Params groups of a step, as its params: editing any of them reruns the step."""
    return {name: config[name] for name in names}


def project_file(path):
    """A file that ships with the project (a prompt): read from the working copy, never from a storage
    provider, so cluster profiles that move results through storage still find it."""
    return local(path)


wildcard_constraints:
    shard=r"\d+",

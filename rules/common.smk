def groups(*names):
    """Params groups of a step, as its params: editing any of them reruns the step."""
    return {name: config[name] for name in names}

"""Loading and validating params.yaml, the one configuration of both engines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from synthembed.io import InputError, read_yaml_mapping

SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")
CONFIG_SHARES = ("task_types", "question_types", "difficulties", "languages", "bitext_languages")
# balance.quotas columns whose labels the configs stage draws from a share of params.configs
QUOTA_SHARES = {"task_type": "task_types", "question_type": "question_types", "difficulty": "difficulties"}


def drawn_labels(shares: dict[str, float]) -> list[str]:
    """The labels a share of more than zero lets the configs stage draw, in params order.

    >>> drawn_labels({"keywords": 0.5, "claim": 0.0, "summary": 0.5})
    ['keywords', 'summary']
    """
    return [label for label, share in shares.items() if share > 0]


def validate_params(params: dict[str, Any], source: str = "params") -> dict[str, Any]:
    """Validate params against the schema and return them unchanged.

    Raises InputError naming the source and the offending key path, e.g.
    ``params.yaml: filter.min_cosine: 3 is greater than the maximum of 1``.
    """
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(params), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.path) or "<top>"
        raise InputError(f"{source}: {where}: {first.message}")
    for where, message in cross_field_errors(params):
        raise InputError(f"{source}: {where}: {message}")
    return params


def cross_field_errors(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules the schema cannot say: combinations of settings that cannot work together.

    >>> train = {"backend": "ms-swift", "method": "full", "checkpoints": 3,
    ...          "merge": {"method": "slerp", "checkpoints": 2}, "distillation": 0.0}
    >>> queries, llm = {"candidates": 3, "generator": "prompted"}, {"temperature": 0.0}
    >>> configs = {key: {"en": 1.0} for key in CONFIG_SHARES}
    >>> configs["length_words"] = [4, 12]
    >>> negatives = {"num_negatives": 3, "range_min": 0, "range_max": 10}
    >>> params = {"train": train, "queries": queries, "llm": llm, "configs": configs, "negatives": negatives,
    ...           "doc2query": {"max_steps": 0}, "balance": {"quotas": {}}}
    >>> cross_field_errors(params)
    [('train.method', 'the ms-swift backend trains LoRA adapters only'), \
('queries.candidates', 'several candidates need llm.temperature > 0: greedy answers are all the same')]
    >>> train |= {"checkpoints": 1, "merge": {"method": "slerp", "checkpoints": 2}}
    >>> configs["languages"] = {"en": 0}
    >>> cross_field_errors(params)[1:3]
    [('train.merge.checkpoints', 'more than the 1 train.checkpoints taken'), \
('configs.languages', "the shares {'en': 0} sum to zero; give some label a positive share")]
    >>> configs["question_types"] = {"claim": 1.0, "keywords": 0.0}
    >>> params["balance"]["quotas"] = {"question_type": {"keywords": 1.0}}
    >>> [error for error in cross_field_errors(params) if error[0].startswith("balance")]
    [('balance.quotas.question_type', "no quota for 'claim', which configs.question_types draws: \
every such row would be dropped as no_quota")]
    """
    train, errors = params["train"], []
    if train["backend"] == "ms-swift" and train["method"] != "lora":
        errors.append(("train.method", "the ms-swift backend trains LoRA adapters only"))
    # merge.method none merges nothing, so its checkpoints count is not used.
    if train["merge"]["method"] != "none" and train["merge"]["checkpoints"] > train["checkpoints"]:
        errors.append(
            ("train.merge.checkpoints", f"more than the {train['checkpoints']} train.checkpoints taken")
        )
    for key in CONFIG_SHARES:  # the schema allows 0 per label; draws need some label above it
        shares = params["configs"][key]
        if sum(shares.values()) <= 0:
            errors.append(
                (f"configs.{key}", f"the shares {shares} sum to zero; give some label a positive share")
            )
    low, high = params["configs"]["length_words"]
    if low > high:
        errors.append(("configs.length_words", f"[{low}, {high}]: the shortest is longer than the longest"))
    for column, quotas in params["balance"]["quotas"].items():
        if sum(quotas.values()) <= 0:
            reason = f"the shares {quotas} sum to zero; give some label a positive share"
            errors.append((f"balance.quotas.{column}", reason))
        if column not in QUOTA_SHARES:
            continue
        drawn = params["configs"][QUOTA_SHARES[column]]
        for label in [label for label in drawn_labels(drawn) if label not in quotas]:
            reason = (
                f"no quota for {label!r}, which configs.{QUOTA_SHARES[column]} draws: "
                "every such row would be dropped as no_quota"
            )
            errors.append((f"balance.quotas.{column}", reason))
    negatives = params["negatives"]
    window = negatives["range_max"] - negatives["range_min"]
    if negatives["num_negatives"] > window:
        reason = (
            f"{negatives['num_negatives']} negatives cannot come from ranks [{negatives['range_min']}, "
            f"{negatives['range_max']}): every pair would be dropped as no_valid_negative"
        )
        errors.append(("negatives.num_negatives", reason))
    if params["queries"]["candidates"] > 1 and params["llm"]["temperature"] == 0:
        reason = "several candidates need llm.temperature > 0: greedy answers are all the same"
        errors.append(("queries.candidates", reason))
    if params["queries"]["generator"] == "doc2query" and params["doc2query"]["max_steps"] == 0:
        errors.append(("queries.generator", "doc2query needs a trained model: set doc2query.max_steps"))
    if train["distillation"] > 0:
        if params["negatives"]["teacher"]["model"] is None:
            errors.append(("train.distillation", "needs teacher scores: set negatives.teacher.model"))
        if (train["backend"], train["loss"], train["false_negative_margin"]) != (
            "sentence-transformers",
            "mnrl",
            None,
        ):
            reason = "needs backend sentence-transformers, loss mnrl and false_negative_margin null"
            errors.append(("train.distillation", reason))
    return errors


def load_params(path: str | Path) -> dict[str, Any]:
    """Read a params file and validate it."""
    path = Path(path)
    return validate_params(read_yaml_mapping(path), source=str(path))


def path_fingerprint(path: str | Path) -> list[list[Any]]:
    """(path, size, MD5 of the bytes) of every file under ``path`` (a file or a folder): a new date with
    the same content leaves it as it was, as DVC's and the Snakemake profile's checksums do.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "abc"}')
    >>> [(Path(name).name, size, digest) for name, size, digest in path_fingerprint(folder)]
    [('corpus.jsonl', 27, 'ad462b01a87811802da867bae50b9a88')]
    """
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return [[str(p), p.stat().st_size, _md5(p)] for p in files if p.exists()]


def _md5(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def source_fingerprint(docs_cfg: dict[str, Any]) -> list[list[Any]]:
    """The fingerprint of the corpus source files (for the stdlib source, of the folder named in place of
    the running Python's), or [] for the running Python's standard library.

    The corpus lies outside the DAG, so the engines see an edited source through this fingerprint:
    Snakemake as a param of the docs rule, DVC as the sources stage's output.

    >>> source_fingerprint({"source": "stdlib", "path": None})
    []
    """
    if not docs_cfg["path"]:
        return []
    return path_fingerprint(docs_cfg["path"])


def eval_sets_fingerprint(evaluate_cfg: dict[str, Any]) -> list[list[Any]]:
    """The fingerprint of every BEIR folder named in ``evaluate.sets``, for the same reason."""
    return [entry for eval_set in evaluate_cfg["sets"] for entry in path_fingerprint(eval_set["path"])]

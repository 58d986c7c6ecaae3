"""The ms-swift training backend: export pairs in its embedding format, run ``swift sft`` offline with
InfoNCE, resolve its timestamped run folder, merge the LoRA adapter into a SentenceTransformer folder.

ms-swift pins an older transformers than this project, so it lives in its own environment
(``.venv-swift``, built by setup.sh) and is driven through its command line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import polars as pl

from synthembed.models import anchor_prompt, embedder_path, load_embedder
from synthembed.train import TrainingRun, merge_checkpoints, toward_initial

logger = logging.getLogger(__name__)


def user_message(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def swift_rows(pairs: pl.DataFrame, query_prompt: str) -> list[dict[str, Any]]:
    """Training pairs in ms-swift's embedding format: the anchor as ``messages``, the positive and each
    hard negative as a conversation of their own. The query instruction is part of the anchor text.

    >>> pairs = pl.DataFrame({"task_type": ["retrieval"], "anchor": ["q"], "positive": ["p"],
    ...                       "negatives": [["n"]]})
    >>> swift_rows(pairs, "Q: ")[0] == {"messages": [{"role": "user", "content": "Q: q"}],
    ...     "positive_messages": [[{"role": "user", "content": "p"}]],
    ...     "negative_messages": [[{"role": "user", "content": "n"}]]}
    True
    """
    return [
        {
            "messages": user_message(anchor_prompt(row["task_type"], query_prompt) + row["anchor"]),
            "positive_messages": [user_message(row["positive"])],
            "negative_messages": [user_message(n) for n in row["negatives"]],
        }
        for row in pairs.iter_rows(named=True)
    ]


def infonce_env(infonce: dict[str, Any], hard_negatives: int) -> dict[str, str]:
    """The INFONCE_* environment variables through which ms-swift's InfoNCE loss is configured.

    >>> env = infonce_env({"temperature": 0.05, "use_batch": True, "include_qq": False}, 3)
    >>> env == {"INFONCE_TEMPERATURE": "0.05", "INFONCE_USE_BATCH": "true", "INFONCE_INCLUDE_QQ": "false",
    ...         "INFONCE_HARD_NEGATIVES": "3"}
    True
    """
    env = {f"INFONCE_{key.upper()}": str(value).lower() for key, value in infonce.items()}
    env["INFONCE_HARD_NEGATIVES"] = str(hard_negatives)
    return env


def swift_command(
    cfg: dict[str, Any], model: str, dataset: Path, output_dir: Path, seed: int, device: str, max_length: int
) -> list[str]:
    """``swift sft`` for embedding training with LoRA and InfoNCE, from the ``train`` params.

    Checkpoints are saved at the same evenly spaced fractions of training as the sentence-transformers
    backend takes them, so ``merge`` works alike. Texts longer than ``max_length`` tokens are cut, as
    sentence-transformers cuts them: swift's default drops such rows without a word.
    """
    swift, lora = cfg["ms_swift"], cfg["lora"]
    command = [swift["command"], "sft", "--model", model, "--model_type", swift["model_type"]]
    command += ["--task_type", "embedding", "--tuner_type", "lora", "--loss_type", "infonce"]
    command += ["--dataset", str(dataset), "--split_dataset_ratio", "0", "--output_dir", str(output_dir)]
    # Offline: models come from the local HF cache or a folder, never from a hub.
    command += ["--use_hf", "true", "--check_model", "false", "--report_to", "none"]
    command += ["--lora_rank", str(lora["r"]), "--lora_alpha", str(lora["alpha"])]
    command += ["--lora_dropout", str(lora["dropout"]), "--target_modules", *swift["target_modules"]]
    command += [
        "--per_device_train_batch_size",
        str(cfg["batch_size"]),
        "--learning_rate",
        str(cfg["learning_rate"]),
    ]
    command += ["--warmup_ratio", str(cfg["warmup_ratio"]), "--num_train_epochs", str(cfg["epochs"])]
    command += ["--max_steps", str(cfg["max_steps"]), "--seed", str(seed), "--data_seed", str(seed)]
    # A fraction of training below 1; one checkpoint is the final save alone, as a ratio of 1.0 reads
    # as "every step".
    save_steps = str(1 / cfg["checkpoints"]) if cfg["checkpoints"] > 1 else str(2**31 - 1)
    command += ["--save_strategy", "steps", "--save_steps", save_steps, "--save_only_model", "true"]
    command += ["--logging_steps", "1", "--dataloader_num_workers", "0"]
    command += ["--max_length", str(max_length), "--truncation_strategy", "right"]
    if device == "cpu":
        command += ["--use_cpu", "true"]
    return command + list(swift["extra_args"])


def run_folder(output_dir: Path) -> Path:
    """The timestamped folder (``v0-20260101-120000``) that ``swift sft`` created under ``output_dir``."""
    runs = sorted(p for p in output_dir.glob("v*-*") if p.is_dir())
    if len(runs) != 1:
        raise RuntimeError(f"{output_dir}: expected one swift run folder, found {[p.name for p in runs]}")
    return runs[0]


def swift_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint folders of a swift run, in step order."""
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    if not checkpoints:
        raise RuntimeError(f"{run_dir}: swift saved no checkpoint")
    return checkpoints


def swift_history(run_dir: Path) -> list[dict[str, float]]:
    """The per-step training log of a swift run (its logging.jsonl), in this project's curve format."""
    history = []
    for line in (run_dir / "logging.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            step = int(str(entry["global_step/max_steps"]).split("/")[0])
            history.append(
                {
                    "step": step,
                    "epoch": entry["epoch"],
                    "loss": entry["loss"],
                    "learning_rate": entry["learning_rate"],
                }
            )
    return history


def merged_adapter(checkpoints: list[Path], target: Path, base_share: float) -> Path:
    """A copy of the last checkpoint whose adapter weights are the slerp of all ``checkpoints``, its
    update scaled towards the base model by ``base_share`` (WiSE-FT)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoints[-1], target)
    states = [load_file(str(c / "adapter_model.safetensors")) for c in checkpoints]
    merged = toward_initial(merge_checkpoints(states), base_share)
    save_file(merged, str(target / "adapter_model.safetensors"))
    return target


def save_with_adapter(embedder_cfg: dict[str, Any], adapter: Path, out_dir: Path) -> None:
    """Fold a swift LoRA adapter into the base embedder's weights; save a SentenceTransformer folder.

    swift trains the causal-LM class of a decoder embedder (its adapter names follow that class), so the
    base is loaded the same way, merged, and its encoder weights moved into the SentenceTransformer.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    base_path = embedder_path(embedder_cfg["model"])
    architectures = AutoConfig.from_pretrained(base_path).architectures or []
    loader = AutoModelForCausalLM if any(a.endswith("ForCausalLM") for a in architectures) else AutoModel
    base = loader.from_pretrained(base_path, dtype=torch.float32)  # the update folded in at full precision
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    model = load_embedder(embedder_cfg, "cpu", for_training=True)
    model[0].model.load_state_dict(merged.base_model.state_dict())
    model.save_pretrained(str(out_dir))


def train_with_swift(
    pairs: pl.DataFrame,
    embedder_cfg: dict[str, Any],
    cfg: dict[str, Any],
    seed: int,
    device: str,
    out_dir: Path,
    work_dir: Path,
) -> TrainingRun:
    """Train with ``swift sft``; save the merged model to ``out_dir`` (the adapter in ``out_dir/adapter``,
    the slerp merge in ``out_dir/merged`` when ``merge.method`` is slerp)."""
    dataset = work_dir / "train.jsonl"
    dataset.write_text(
        "".join(json.dumps(row) + "\n" for row in swift_rows(pairs, embedder_cfg["query_prompt"]))
    )
    width = int(pairs["negatives"].list.len().min() or 0)
    env = os.environ | infonce_env(cfg["ms_swift"]["infonce"], width) | {"HF_HUB_OFFLINE": "1"}
    command = swift_command(
        cfg,
        embedder_path(embedder_cfg["model"]),
        dataset,
        work_dir / "swift",
        seed,
        device,
        embedder_cfg["max_seq_length"],
    )
    logger.info("running %s", " ".join(command))
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"swift sft exited {result.returncode}:\n{result.stderr[-4000:]}")
    run_dir = run_folder(work_dir / "swift")
    checkpoints = swift_checkpoints(run_dir)
    logger.info("swift run %s: checkpoints %s", run_dir.name, [c.name for c in checkpoints])
    if cfg["merge"]["method"] == "slerp":
        last = checkpoints[-cfg["merge"]["checkpoints"] :]
        adapter = merged_adapter(last, work_dir / "merged-adapter", cfg["merge"]["base_share"])
        save_with_adapter(embedder_cfg, adapter, out_dir / "merged")
    shutil.copytree(
        checkpoints[-1], out_dir / "adapter", ignore=shutil.ignore_patterns("*.pt", "*.pth", "*.bin")
    )
    save_with_adapter(embedder_cfg, checkpoints[-1], out_dir)
    return TrainingRun(history=swift_history(run_dir), checkpoints=checkpoints)

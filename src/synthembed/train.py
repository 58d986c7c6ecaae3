"""Fine-tuning the embedder with InfoNCE (MultipleNegativesRankingLoss): LoRA or full."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from synthembed.models import load_embedder, resolve_device

logger = logging.getLogger(__name__)


def training_columns(pairs: pl.DataFrame, prompt: str) -> dict[str, list[str]]:
    """(anchor, positive, negative_1..n) columns of one task type; ``prompt`` goes on anchors only.

    >>> pairs = pl.DataFrame({"anchor": ["q"], "positive": ["p"], "negatives": [["n1", "n2"]]})
    >>> training_columns(pairs, "Q: ")
    {'anchor': ['Q: q'], 'positive': ['p'], 'negative_1': ['n1'], 'negative_2': ['n2']}
    """
    columns = {"anchor": [prompt + a for a in pairs["anchor"]], "positive": pairs["positive"].to_list()}
    width = pairs["negatives"].list.len().min() or 0
    for i in range(width):
        columns[f"negative_{i + 1}"] = pairs["negatives"].list.get(i).to_list()
    return columns


def training_datasets(pairs: pl.DataFrame, query_prompt: str):
    """One dataset per task type, so that a batch never mixes tasks: in-batch negatives of a
    retrieval query are documents, of a classification text are other labels. The query instruction
    goes on retrieval anchors only; the other tasks are symmetric."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            task_type: Dataset.from_dict(
                training_columns(group, query_prompt if task_type == "retrieval" else "")
            )
            for (task_type,), group in pairs.sort("task_type").group_by("task_type", maintain_order=True)
        }
    )


def attach_lora(model, cfg: dict[str, Any]):
    """Wrap the transformer of a SentenceTransformer in a peft LoRA model; returns the peft model."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=cfg["r"],
        lora_alpha=cfg["alpha"],
        lora_dropout=cfg["dropout"],
        target_modules=cfg["target_modules"],
    )
    peft_model = get_peft_model(model[0].model, lora)
    model[0].model = peft_model
    trainable, total = peft_model.get_nb_trainable_parameters()
    logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return peft_model


def train_embedder(
    pairs: pl.DataFrame,
    embedder_cfg: dict[str, Any],
    cfg: dict[str, Any],
    seed: int,
    device: str,
    out_dir: Path,
    work_dir: Path,
) -> list[dict[str, float]]:
    """Train on ``pairs`` (task_type, anchor, positive, negatives); save what SentenceTransformer(out_dir)
    loads.

    With LoRA the adapter is saved to ``out_dir/adapter`` and merged into the saved weights.
    Returns the training log: one {step, epoch, loss, learning_rate} per step.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers, MultiDatasetBatchSamplers

    device = resolve_device(device)
    model = load_embedder(embedder_cfg, device, for_training=True)
    peft_model = attach_lora(model, cfg["lora"]) if cfg["method"] == "lora" else None
    datasets = training_datasets(pairs, embedder_cfg["query_prompt"])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=cfg["epochs"],
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"],
        warmup_ratio=cfg["warmup_ratio"],
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a repeated text in a batch would be a false negative
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,  # one task type per batch
        disable_tqdm=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=datasets, loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    if peft_model is not None:
        peft_model.save_pretrained(str(out_dir / "adapter"))
        model[0].model = peft_model.merge_and_unload()
    model.save_pretrained(str(out_dir))
    return [
        {k: float(entry[k]) for k in ("step", "epoch", "loss", "learning_rate") if k in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]

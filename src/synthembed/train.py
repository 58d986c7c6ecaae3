"""Fine-tuning the embedder with InfoNCE: LoRA or full, plain or cached, with false-negative masking,
checkpoints and their spherical merge."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

from synthembed.models import anchor_prompt, load_embedder, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)


def training_columns(pairs: pl.DataFrame, prompt: str) -> dict[str, list]:
    """(anchor, positive, negative_1..n) columns of one task type; ``prompt`` goes on anchors only.
    Where every row has teacher scores (positive, then negatives) they become the ``label`` column.

    >>> pairs = pl.DataFrame({"anchor": ["q"], "positive": ["p"], "negatives": [["n1", "n2"]]})
    >>> training_columns(pairs, "Q: ")
    {'anchor': ['Q: q'], 'positive': ['p'], 'negative_1': ['n1'], 'negative_2': ['n2']}
    >>> training_columns(pairs.drop("negatives"), "")
    {'anchor': ['q'], 'positive': ['p']}
    >>> training_columns(pairs.with_columns(teacher_scores=pl.Series([[-2.0, -5.0, -4.0]])), "")["label"]
    [[-2.0, -5.0, -4.0]]
    """
    columns = {"anchor": [prompt + a for a in pairs["anchor"]], "positive": pairs["positive"].to_list()}
    width = (pairs["negatives"].list.len().min() or 0) if "negatives" in pairs.columns else 0
    for i in range(width):
        columns[f"negative_{i + 1}"] = pairs["negatives"].list.get(i).to_list()
    if width and "teacher_scores" in pairs.columns and pairs["teacher_scores"].null_count() == 0:
        columns["label"] = pairs["teacher_scores"].list.head(1 + width).to_list()
    return columns


def training_datasets(pairs: pl.DataFrame, query_prompt: str):
    """One dataset per task type, so that a batch never mixes tasks: in-batch negatives of a
    retrieval query are documents, of a classification text are other labels."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {
            task_type: Dataset.from_dict(training_columns(group, anchor_prompt(task_type, query_prompt)))
            for (task_type,), group in pairs.sort("task_type").group_by("task_type", maintain_order=True)
        }
    )


def teacher_divergence(
    embeddings: list[torch.Tensor], labels: torch.Tensor, temperature: float, teacher_temperature: float
) -> torch.Tensor:
    """KL(teacher || model) over each row's candidates, averaged over rows.

    ``embeddings`` are the query's, then each candidate's; ``labels`` the teacher's log-likelihoods
    log p(query | candidate), whose softmax at ``teacher_temperature`` is the teacher's distribution
    over the candidates (at 1 its posterior under a uniform prior; summed over a query's tokens it is
    nearly one-hot on the positive, and a higher temperature lets its ranking of the negatives through).
    The model's distribution is the softmax of its cosine scores at the InfoNCE ``temperature``.

    >>> q, d1, d2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> round(teacher_divergence([q, d1, d2], torch.tensor([[-3.0, -5.0]]), 0.5, 1.0).item(), 6)
    0.0
    >>> round(teacher_divergence([q, d1, d2], torch.tensor([[-6.0, -10.0]]), 0.5, 2.0).item(), 6)
    0.0
    """
    query = torch.nn.functional.normalize(embeddings[0], dim=-1)
    candidates = torch.nn.functional.normalize(torch.stack(embeddings[1:], dim=1), dim=-1)
    model_log_p = torch.log_softmax(torch.einsum("bd,bkd->bk", query, candidates) / temperature, dim=-1)
    teacher_log_p = torch.log_softmax(labels.to(model_log_p) / teacher_temperature, dim=-1)
    return (teacher_log_p.exp() * (teacher_log_p - model_log_p)).sum(dim=-1).mean()


class TeacherDistillation(torch.nn.Module):
    """An InfoNCE loss plus ``weight`` x ``teacher_divergence`` over each row's own candidates (positive,
    then hard negatives), as GPL and RocketQAv2 distil a reranker into a bi-encoder."""

    def __init__(self, infonce, weight: float, temperature: float, teacher_temperature: float):
        super().__init__()
        self.model, self.infonce, self.weight = infonce.model, infonce, weight
        self.temperature, self.teacher_temperature = temperature, teacher_temperature

    def forward(self, sentence_features, labels: torch.Tensor | None) -> torch.Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        embeddings = embed_columns(self.model, sentence_features)
        loss = self.infonce.compute_loss_from_embeddings(embeddings, labels)
        # The dev pairs (eval loss) have no candidates beyond the positive and no teacher scores.
        if labels is None:
            return loss
        divergence = teacher_divergence(embeddings, labels, self.temperature, self.teacher_temperature)
        return loss + self.weight * divergence


def training_loss(model, cfg: dict[str, Any], datasets, dev_names: Iterable[str] = ()):
    """``build_loss``'s loss for every task type; with ``train.distillation`` above 0, one per task type
    (of ``datasets`` and of the dev sets, ``dev_names``), ``TeacherDistillation`` where the training
    dataset has teacher scores (``label``). Params validation makes sure the loss is then ``mnrl``."""
    infonce = build_loss(model, cfg)
    if cfg["distillation"] == 0:
        return infonce
    scored = {name for name, dataset in datasets.items() if "label" in dataset.column_names}
    if not scored:
        raise ValueError(
            "train.distillation is set but no pairs have teacher scores: set negatives.teacher.model"
        )
    distilled = TeacherDistillation(
        infonce, cfg["distillation"], cfg["temperature"], cfg["teacher_temperature"]
    )
    return {name: distilled if name in scored else infonce for name in [*datasets, *dev_names]}


def build_loss(model, cfg: dict[str, Any]):
    """The InfoNCE loss of the ``train`` params: in-batch and hard negatives at ``temperature``.

    ``loss: cached_mnrl`` computes the same loss in mini-batches (GradCache), so the effective batch is
    ``batch_size`` while memory follows ``mini_batch_size``. With ``false_negative_margin`` set, the loss
    is Qwen3-Embedding's: queries and documents are also contrasted with each other, and any candidate
    scoring more than the margin above the positive is masked as a likely false negative
    (sentence-transformers' GISTEmbed loss, guided by the model itself).
    """
    from sentence_transformers.sentence_transformer import losses

    cached, margin = cfg["loss"] == "cached_mnrl", cfg["false_negative_margin"]
    if margin is None:
        if cached:
            return losses.CachedMultipleNegativesRankingLoss(
                model, scale=1 / cfg["temperature"], mini_batch_size=cfg["mini_batch_size"]
            )
        return losses.MultipleNegativesRankingLoss(model, scale=1 / cfg["temperature"])
    # GISTEmbed masks a candidate when its score exceeds positive - margin: a negative margin masks
    # only those scoring above the positive by more than |margin|, the report's rule.
    masked = {
        "guide": model,
        "temperature": cfg["temperature"],
        "margin_strategy": "absolute",
        "margin": -margin,
    }
    if cached:
        return losses.CachedGISTEmbedLoss(model, mini_batch_size=cfg["mini_batch_size"], **masked)
    return losses.GISTEmbedLoss(model, **masked)


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


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation between two weight tensors, treated as flat vectors: the result turns
    from ``a`` towards ``b`` by the fraction ``t`` of the angle between them, its norm interpolated
    linearly; nearly parallel tensors are interpolated linearly.

    >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    >>> [round(v, 4) for v in slerp(a, b, 0.5).tolist()]
    [0.7071, 0.7071]
    >>> slerp(a, 2 * a, 0.5).tolist()
    [1.5, 0.0]
    """
    flat_a, flat_b = a.flatten().double(), b.flatten().double()
    norm_a, norm_b = flat_a.norm(), flat_b.norm()
    if norm_a < eps or norm_b < eps:
        return torch.lerp(a.double(), b.double(), t).to(a.dtype)
    cos = torch.clamp(torch.dot(flat_a / norm_a, flat_b / norm_b), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.sin().abs() < 1e-6:
        return torch.lerp(a.double(), b.double(), t).to(a.dtype)
    direction = (
        torch.sin((1 - t) * omega) * flat_a / norm_a + torch.sin(t * omega) * flat_b / norm_b
    ) / omega.sin()
    norm = (1 - t) * norm_a + t * norm_b
    return (direction * norm).reshape(a.shape).to(a.dtype)


def merge_checkpoints(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Spherical merge of checkpoints, tensor by tensor: the k-th checkpoint is slerped into the running
    merge with weight 1/k (the incremental form of an average: exactly the midpoint for two checkpoints,
    close to the spherical mean for more).

    >>> s = merge_checkpoints([{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}])
    >>> [round(v, 4) for v in s["w"].tolist()]
    [0.7071, 0.7071]
    """
    if not states:
        raise ValueError("no checkpoints to merge")
    merged = dict(states[0])
    for k, state in enumerate(states[1:], start=2):
        if state.keys() != merged.keys():
            raise ValueError("checkpoints hold different tensors")
        merged = {name: slerp(merged[name], state[name], 1 / k) for name in merged}
    return merged


def toward_initial(
    state: dict[str, torch.Tensor], share: float, initial: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """WiSE-FT: trained weights moved back ``share`` of the way to their values before training, so the
    training update is scaled by ``1 - share``. A LoRA update is B @ A with B zero before training:
    scaling B alone scales it exactly, and A is kept. Other tensors are interpolated linearly towards
    ``initial`` (needed only when there are such tensors). A share of 0 returns ``state`` as it is.

    >>> state = {"lora_A.weight": torch.tensor([[2.0]]), "lora_B.weight": torch.tensor([[4.0]]),
    ...          "dense.weight": torch.tensor([1.0, 3.0])}
    >>> moved = toward_initial(state, 0.25, {"dense.weight": torch.tensor([1.0, -1.0])})
    >>> [moved[name].flatten().tolist() for name in state]
    [[2.0], [3.0], [1.0, 2.0]]
    """
    if share == 0:
        return state
    moved = {}
    for name, tensor in state.items():
        if "lora_A" in name:
            moved[name] = tensor
        elif "lora_B" in name:
            moved[name] = tensor * (1 - share)
        elif initial is None or name not in initial:
            raise ValueError(f"no weights before training for {name}")
        else:
            moved[name] = torch.lerp(tensor, initial[name], share)
    return moved


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters being trained (LoRA matrices, or every weight in a full fine-tune)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    """Put ``state`` (from ``trainable_state`` of the same model) back into the model."""
    missing = state.keys() - dict(model.named_parameters()).keys()
    if missing:
        raise ValueError(f"checkpoint tensors not in the model: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)


def checkpoint_steps(max_steps: int, checkpoints: int) -> list[int]:
    """Evenly spaced steps at which checkpoints are taken; the last is always the final step.

    >>> checkpoint_steps(10, 3), checkpoint_steps(2, 4), checkpoint_steps(7, 1)
    ([4, 8, 10], [1, 2], [7])
    """
    every = max(1, math.ceil(max_steps / checkpoints))
    return sorted({*range(every, max_steps, every), max_steps})


@dataclass
class TrainingRun:
    """What a training run reports: the loss per step, the dev loss per checkpoint, the checkpoints."""

    history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)


def checkpoint_callback(folder: Path, checkpoints: int, run: TrainingRun, evaluate: bool):
    """A trainer callback that saves the trained parameters at evenly spaced steps and (with dev pairs)
    asks for a dev evaluation there, so the eval curve has a point per checkpoint."""
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    class Checkpoints(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in checkpoint_steps(state.max_steps, checkpoints):
                path = folder / f"checkpoint-{state.global_step}.safetensors"
                save_file({n: t.contiguous() for n, t in trainable_state(model).items()}, str(path))
                run.checkpoints.append(path)
                control.should_evaluate = evaluate
            return control

    return Checkpoints()


def train_embedder(
    pairs: pl.DataFrame,
    dev_pairs: pl.DataFrame,
    embedder_cfg: dict[str, Any],
    cfg: dict[str, Any],
    seed: int,
    device: str,
    out_dir: Path,
    work_dir: Path,
) -> TrainingRun:
    """Train on ``pairs`` (task_type, anchor, positive, negatives); save what SentenceTransformer(out_dir)
    loads.

    ``dev_pairs`` (task_type, anchor, positive) give the eval loss at each checkpoint. ``cfg["dtype"]``
    is the compute dtype (autocast; ``auto``: bfloat16 on GPUs, float32 on CPUs). With LoRA the
    adapter is saved to ``out_dir/adapter`` and merged into the saved weights. With ``merge.method:
    slerp`` the last ``merge.checkpoints`` checkpoints are merged spherically into ``out_dir/merged``,
    then moved back towards the weights before training by ``merge.base_share`` (WiSE-FT).
    """
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        MultiDatasetBatchSamplers,
    )

    device = resolve_device(device)
    torch.manual_seed(seed)
    model = load_embedder(embedder_cfg, device, for_training=True)
    peft_model = attach_lora(model, cfg["lora"]) if cfg["method"] == "lora" else None
    merge = cfg["merge"]
    # A full fine-tune's update can only be scaled against a copy of the weights it started from.
    keep_initial = cfg["method"] == "full" and merge["method"] == "slerp" and merge["base_share"] > 0
    initial = trainable_state(model) if keep_initial else None
    datasets = training_datasets(pairs, embedder_cfg["query_prompt"])
    dev = training_datasets(dev_pairs, embedder_cfg["query_prompt"]) if dev_pairs.height else None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=cfg["epochs"],
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["batch_size"],
        per_device_eval_batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"],
        # transformers 5 reads a float below 1 as a share of the steps (its warmup_ratio is deprecated)
        warmup_steps=cfg["warmup_ratio"],
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",  # checkpoints are the trained parameters only, taken by the callback
        report_to="none",
        use_cpu=device == "cpu",
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a repeated text in a batch would be a false negative
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,  # one task type per batch
        disable_tqdm=False,
    )
    run = TrainingRun()
    loss = training_loss(model, cfg, datasets, dev or ())
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=datasets,
        eval_dataset=dev,
        loss=loss,
        callbacks=[checkpoint_callback(work_dir, cfg["checkpoints"], run, dev is not None)],
    )
    # auto leaves CPUs in float32: on one with avx512_bf16, bfloat16 steps were 1.13x faster, but
    # SciFact's real pairs gained +1.59 where float32 gained +1.91 (benchmarks/README.md).
    dtype = resolve_dtype(cfg["dtype"], device, on_cpu=False)
    # Autocast around the whole run, not the Trainer's bf16 flag: cached InfoNCE re-embeds each
    # mini-batch inside the backward pass, outside the forward's autocast, and would run it in float32.
    # Weights and optimizer state stay float32.
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
        trainer.train()
    for entry in trainer.state.log_history:
        if "loss" in entry:
            run.history.append(
                {"step": int(entry["step"])}
                | {k: float(entry[k]) for k in ("epoch", "loss", "learning_rate")}
            )
        run.eval_history += [
            {
                "step": int(entry["step"]),
                "task_type": key[len("eval_") : -len("_loss")],
                "eval_loss": float(value),
            }
            for key, value in entry.items()
            if key.startswith("eval_") and key.endswith("_loss")
        ]
    if merge["method"] == "slerp":
        last = run.checkpoints[-merge["checkpoints"] :]
        merged = merge_checkpoints([load_file(str(p)) for p in last])
        merged_model = copy.deepcopy(model)
        load_trainable_state(merged_model, toward_initial(merged, merge["base_share"], initial))
        logger.info(
            "merged %d checkpoints (%s), %.2f of the way back to the weights before training",
            len(last),
            ", ".join(p.stem for p in last),
            merge["base_share"],
        )
        save_embedder(merged_model, out_dir / "merged")
    if peft_model is not None:
        peft_model.save_pretrained(str(out_dir / "adapter"))
    save_embedder(model, out_dir)
    return run


def save_embedder(model, folder: Path) -> None:
    """Save a SentenceTransformer, folding a LoRA adapter into the weights first."""
    from peft import PeftModel

    if isinstance(model[0].model, PeftModel):
        model[0].model = model[0].model.merge_and_unload()
    model.save_pretrained(str(folder))

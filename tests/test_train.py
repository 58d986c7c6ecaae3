"""Training: both backends, LoRA and full, plain and cached InfoNCE, false-negative masking, checkpoints and
their slerp merge, and Qwen3-Embedding's instruction and last-token pooling on a tiny random Qwen3."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import MINILM, ROOT, default_params
from sentence_transformers import SentenceTransformer

from synthembed.io import InputError
from synthembed.models import load_embedder
from synthembed.params import validate_params
from synthembed.swift import merged_adapter, run_folder, swift_checkpoints, train_with_swift
from synthembed.train import (
    build_loss,
    merge_checkpoints,
    slerp,
    toward_initial,
    train_embedder,
    training_datasets,
)

TRAIN = {
    "backend": "sentence-transformers",
    "method": "lora",
    "loss": "mnrl",
    "mini_batch_size": 2,
    "dtype": "float32",
    "temperature": 0.05,
    "false_negative_margin": None,
    "distillation": 0.0,
    "teacher_temperature": 1.0,
    "epochs": 1,
    "max_steps": 4,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "checkpoints": 2,
    "merge": {"method": "slerp", "checkpoints": 2, "base_share": 0.0},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
}
PAIRS = pl.DataFrame(
    {
        "task_type": ["retrieval"] * 8 + ["classification"] * 4,
        "anchor": [f"how do I use function number {i}" for i in range(8)]
        + [f"def helper_{i}(x): return x - {i}" for i in range(4)],
        "positive": [f"def function_{i}(x): return x * {i}" for i in range(8)]
        + ["arithmetic: functions that compute with numbers"] * 2
        + ["subtraction: functions that take away", "helpers: small utility functions"],
        "negatives": [[f"def other_{i}(y): return y + {i}"] for i in range(8)]
        + [["strings: text handling"]] * 4,
    }
)
DEV = pl.DataFrame(
    {
        "task_type": ["retrieval"] * 4,
        "anchor": [f"what does function {i} return" for i in range(4)],
        "positive": [f"def function_{i}(x): return x * {i}" for i in range(4)],
    }
)
PROBE = ["how to multiply a number", "def triple(x): return 3 * x"]


def changed(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def test_slerp_keeps_the_unit_sphere_and_its_ends():
    a, b = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    a, b = a / a.norm(), b / b.norm()
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    assert middle.norm().item() == pytest.approx(1.0)  # a linear average would shrink it
    assert torch.dot(middle, a).item() == pytest.approx(torch.dot(middle, b).item())
    assert (torch.lerp(a, b, 0.5).norm() < 0.999).item()


def test_merging_three_checkpoints_stays_on_the_sphere_between_them():
    states = [{"w": torch.tensor([1.0, 0.0, 0.0])}, {"w": torch.tensor([0.0, 1.0, 0.0])}]
    states.append({"w": torch.tensor([0.0, 0.0, 1.0])})
    merged = merge_checkpoints(states)["w"]
    assert merged.norm().item() == pytest.approx(1.0, abs=1e-6)
    # The first two meet halfway; the third then pulls a third of the angle (30 of 90 degrees).
    assert merged.tolist() == pytest.approx([0.75**0.5 / 2**0.5, 0.75**0.5 / 2**0.5, 0.5], abs=1e-6)
    with pytest.raises(ValueError, match="different tensors"):
        merge_checkpoints([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])


def test_toward_initial_scales_lora_and_full_updates_exactly():
    generator = torch.Generator().manual_seed(0)
    lora_a, lora_b = torch.randn(4, 16, generator=generator), torch.randn(16, 4, generator=generator)
    before, after = torch.randn(16, 16, generator=generator), torch.randn(16, 16, generator=generator)
    state = {"q.lora_A.weight": lora_a, "q.lora_B.weight": lora_b, "dense.weight": after}
    moved = toward_initial(state, 0.3, {"dense.weight": before})
    # The LoRA update B @ A keeps 70 % of itself; the full weight moves 30 % of the way back.
    assert torch.allclose(
        moved["q.lora_B.weight"] @ moved["q.lora_A.weight"], 0.7 * (lora_b @ lora_a), atol=1e-5
    )
    assert torch.allclose(moved["dense.weight"], before + 0.7 * (after - before), atol=1e-6)
    assert torch.equal(toward_initial(state, 1.0, {"dense.weight": before})["dense.weight"], before)
    with pytest.raises(ValueError, match=r"no weights before training for dense\.weight"):
        toward_initial(state, 0.3)


def test_swift_merged_adapter_scales_the_merged_update(tmp_path):
    from safetensors.torch import load_file, save_file

    checkpoints = []
    for step, scale in ((2, 1.0), (4, 3.0)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
        state = {"q.lora_A.weight": torch.ones(2, 3), "q.lora_B.weight": torch.full((3, 2), scale)}
        save_file(state, str(folder / "adapter_model.safetensors"))
        checkpoints.append(folder)
    target = merged_adapter(checkpoints, tmp_path / "merged", base_share=0.5)
    merged = load_file(str(target / "adapter_model.safetensors"))
    # The two B matrices are parallel: their slerp is the mean, 2.0, and half of it is kept.
    assert torch.allclose(merged["q.lora_B.weight"], torch.full((3, 2), 1.0))
    assert torch.equal(merged["q.lora_A.weight"], torch.ones(2, 3))
    assert (target / "adapter_config.json").exists()


def batch_loss(model, loss, anchors, positives) -> float:
    model.eval()  # no dropout: the two losses must see the same embeddings
    feats = [model.preprocess(anchors), model.preprocess(positives)]
    return float(loss(feats, torch.zeros(len(anchors))).detach())


def test_cached_loss_equals_the_plain_loss(minilm):
    anchors = ["sort a list", "open a file", "parse json text", "measure elapsed time"]
    positives = ["sorted(xs)", "open(path)", "json.loads(s)", "time.perf_counter()"]
    plain = batch_loss(minilm, build_loss(minilm, TRAIN), anchors, positives)
    cached = batch_loss(minilm, build_loss(minilm, TRAIN | {"loss": "cached_mnrl"}), anchors, positives)
    assert cached == pytest.approx(plain, rel=1e-4)


def test_false_negative_margin_masks_a_candidate_that_beats_the_positive(minilm):
    # The second row's positive answers the first query better than the first row's own positive:
    # an in-batch false negative. With the margin it leaves the first row's denominator.
    anchors = ["how do I sort a list in python", "unrelated: weather tomorrow in paris"]
    positives = ["a list", "sort a list in python with sorted()"]
    masked = TRAIN | {"false_negative_margin": 0.1}
    unmasked = TRAIN | {"false_negative_margin": 100.0}  # no candidate is 100 above its positive
    with_mask = batch_loss(minilm, build_loss(minilm, masked), anchors, positives)
    without = batch_loss(minilm, build_loss(minilm, unmasked), anchors, positives)
    assert with_mask < without - 0.5


@pytest.mark.slow
@pytest.mark.parametrize(("method", "loss"), [("lora", "mnrl"), ("full", "cached_mnrl")])
def test_training_saves_a_loadable_model_its_checkpoints_and_their_merge(tmp_path, method, loss, minilm):
    (tmp_path / "work").mkdir()
    cfg = TRAIN | {"method": method, "loss": loss}
    run = train_embedder(
        PAIRS, DEV, MINILM, cfg, seed=1, device="cpu", out_dir=tmp_path / "model", work_dir=tmp_path / "work"
    )
    # Two task types, one dataset each (batches never mix them); 4 steps, checkpoints at 2 and 4.
    assert [h["step"] for h in run.history] == [1, 2, 3, 4]
    assert all(np.isfinite(h["loss"]) for h in run.history)
    assert [p.name for p in run.checkpoints] == ["checkpoint-2.safetensors", "checkpoint-4.safetensors"]
    assert [(e["step"], e["task_type"]) for e in run.eval_history] == [(2, "retrieval"), (4, "retrieval")]
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").exists() == (method == "lora")
    tuned = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    merged = SentenceTransformer(str(tmp_path / "model" / "merged"), device="cpu")
    assert not any("lora" in name for name, _ in tuned.named_parameters())
    base, after, between = minilm.encode(PROBE), tuned.encode(PROBE), merged.encode(PROBE)
    assert changed(base, after) > 1e-4 and changed(after, between) > 1e-6 and changed(base, between) > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_base_share_puts_the_merged_model_halfway_between_base_and_tuned(tmp_path, method, minilm):
    (tmp_path / "work").mkdir()
    merge = {"method": "slerp", "checkpoints": 1, "base_share": 0.5}
    cfg = TRAIN | {"method": method, "checkpoints": 1, "merge": merge}
    train_embedder(PAIRS, DEV, MINILM, cfg, 1, "cpu", tmp_path / "model", tmp_path / "work")
    tuned = SentenceTransformer(str(tmp_path / "model"), device="cpu").state_dict()
    merged = SentenceTransformer(str(tmp_path / "model" / "merged"), device="cpu").state_dict()
    base = minilm.state_dict()
    moved = [name for name in base if not torch.equal(base[name], tuned[name])]
    assert len(moved) >= 12  # query and value of 6 layers at least
    for name in base:
        assert torch.allclose(merged[name], (base[name] + tuned[name]) / 2, atol=1e-6), name


@pytest.mark.slow
def test_training_is_seeded_and_needs_no_dev_pairs(tmp_path):
    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cfg = TRAIN | {"merge": {"method": "none", "checkpoints": 2, "base_share": 0.0}}
        run = train_embedder(
            PAIRS, DEV.head(0), MINILM, cfg, 7, "cpu", tmp_path / name / "model", tmp_path / name
        )
        assert len(run.checkpoints) == 2 and run.eval_history == []
        outputs.append(SentenceTransformer(str(tmp_path / name / "model"), device="cpu").encode(PROBE))
    assert changed(*outputs) < 1e-6


@pytest.mark.slow
def test_warmup_ratio_is_a_share_of_the_steps(tmp_path):
    # Half of 4 steps: the rate climbs linearly for 2 steps, then decays linearly to 0 (each step logs
    # the rate it ran at).
    cfg = TRAIN | {"warmup_ratio": 0.5, "merge": {"method": "none", "checkpoints": 2, "base_share": 0.0}}
    run = train_embedder(PAIRS, DEV.head(0), MINILM, cfg, 7, "cpu", tmp_path / "model", tmp_path)
    assert [h["learning_rate"] for h in run.history] == pytest.approx([0.0, 5e-4, 1e-3, 5e-4])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cached_loss_re_embeds_in_the_training_dtype_and_keeps_float32_weights(tmp_path, dtype):
    # Cached InfoNCE embeds each mini-batch twice: without gradients in the forward pass, then with them
    # inside the backward pass, where the Trainer's own bf16 autocast no longer holds.
    linear_outputs = []

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear):
            linear_outputs.append((torch.is_grad_enabled(), output.dtype))

    cfg = TRAIN | {"method": "full", "loss": "cached_mnrl", "dtype": dtype, "max_steps": 1}
    cfg |= {"merge": {"method": "none", "checkpoints": 2, "base_share": 0.0}, "checkpoints": 1}
    with torch.nn.modules.module.register_module_forward_hook(record):
        train_embedder(PAIRS, DEV.head(0), MINILM, cfg, 1, "cpu", tmp_path / "model", tmp_path)
    # The saved model's card encodes an example after training, in float32: only the sets are compared.
    with_grad = {dt for grad, dt in linear_outputs if grad}
    without_grad = {dt for grad, dt in linear_outputs if not grad}
    assert with_grad == {getattr(torch, dtype)} and getattr(torch, dtype) in without_grad
    saved = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert {p.dtype for p in saved.parameters()} == {torch.float32}


def qwen3_embedder(path: Path) -> dict:
    return {
        "model": str(path),
        "pooling": "lasttoken",
        "padding_side": "auto",
        "max_seq_length": 64,
        "encode_dtype": "float32",
        "query_prompt": "Instruct: Given a question, retrieve code that answers it\nQuery:",
    }


def test_training_loads_float32_and_the_models_own_saved_prompts_are_dropped(tiny_qwen3, tmp_path):
    saved = load_embedder(qwen3_embedder(tiny_qwen3))
    saved.prompts = {
        "query": "Instruct: Given a web search query, retrieve pages\nQuery:",
        "document": "page: ",
    }
    saved.to(torch.bfloat16).save_pretrained(str(tmp_path / "bf16"))
    embedder = qwen3_embedder(tmp_path / "bf16") | {"pooling": "auto"}
    assert {p.dtype for p in load_embedder(embedder, for_training=True).parameters()} == {torch.float32}
    model = load_embedder(embedder)
    texts = ["sort numbers", "protein folding depends on hydrophobic interactions in the cell"]
    assert np.array_equal(model.encode_query(texts), model.encode(texts))
    assert np.array_equal(model.encode_document(texts), model.encode(texts))


def test_qwen3_pools_the_last_real_token_with_left_padding(tiny_qwen3):
    from transformers import AutoModel, AutoTokenizer

    model = load_embedder(qwen3_embedder(tiny_qwen3))
    assert model.tokenizer.padding_side == "left"
    texts = ["sort numbers", "protein folding depends on hydrophobic interactions in the cell"]
    together = model.encode(texts)
    alone = np.stack([model.encode([t])[0] for t in texts])
    assert changed(together, alone) < 1e-5  # padding does not move the pooled token
    tokenizer, raw = AutoTokenizer.from_pretrained(tiny_qwen3), AutoModel.from_pretrained(tiny_qwen3)
    with torch.no_grad():
        hidden = raw(**tokenizer(texts[1:], return_tensors="pt")).last_hidden_state[0, -1]
    assert changed(alone[1], (hidden / hidden.norm()).numpy()) < 1e-5


def test_a_warmup_of_every_step_is_rejected_naming_the_key():
    # transformers reads a warmup of 1 or more as a count of steps, not a share
    params = default_params()
    params["train"]["warmup_ratio"] = 1.0
    with pytest.raises(InputError, match=r"p\.yaml: train\.warmup_ratio: 1\.0 is greater than or equal"):
        validate_params(params, "p.yaml")


def test_merge_checkpoints_must_be_taken_only_when_merging():
    params = default_params()
    params["train"] |= {"checkpoints": 1, "merge": {"method": "none", "checkpoints": 2, "base_share": 0.0}}
    assert validate_params(params, "p.yaml")["train"]["checkpoints"] == 1
    params["train"]["merge"]["method"] = "slerp"
    with pytest.raises(
        InputError, match=r"p\.yaml: train\.merge\.checkpoints: more than the 1 train\.checkpoints"
    ):
        validate_params(params, "p.yaml")


def test_query_instruction_goes_on_retrieval_anchors_only():
    prompt = qwen3_embedder(Path("unused"))["query_prompt"]
    datasets = training_datasets(PAIRS, prompt)
    assert datasets["retrieval"]["anchor"][0] == prompt + "how do I use function number 0"
    assert datasets["retrieval"]["positive"][0] == "def function_0(x): return x * 0"
    assert datasets["classification"]["anchor"][0] == "def helper_0(x): return x - 0"


def test_qwen3_lora_training_moves_the_model_and_keeps_left_padded_last_token_pooling(tmp_path, tiny_qwen3):
    (tmp_path / "work").mkdir()
    embedder = qwen3_embedder(tiny_qwen3)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    run = train_embedder(
        PAIRS, DEV, embedder, TRAIN | {"lora": lora}, 0, "cpu", tmp_path / "model", tmp_path / "work"
    )
    assert len(run.history) == 4
    tuned = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert tuned.tokenizer.padding_side == "left"
    assert tuned[1].get_config_dict()["pooling_mode"] == "lasttoken"
    assert changed(load_embedder(embedder).encode(PROBE), tuned.encode(PROBE)) > 1e-4


def test_swift_run_folder_must_be_unique(tmp_path):
    with pytest.raises(RuntimeError, match="expected one swift run folder"):
        run_folder(tmp_path)
    (tmp_path / "v0-20260101-000000" / "checkpoint-10").mkdir(parents=True)
    (tmp_path / "v0-20260101-000000" / "checkpoint-9").mkdir()
    assert run_folder(tmp_path).name == "v0-20260101-000000"
    assert [c.name for c in swift_checkpoints(run_folder(tmp_path))] == ["checkpoint-9", "checkpoint-10"]
    (tmp_path / "v1-20260101-000001").mkdir()
    with pytest.raises(RuntimeError, match="v0-20260101-000000"):
        run_folder(tmp_path)


SWIFT = ROOT / ".venv-swift" / "bin" / "swift"


@pytest.mark.slow
def test_ms_swift_backend_trains_merges_and_loads(tmp_path, tiny_qwen3):
    assert SWIFT.exists(), "setup.sh builds .venv-swift with ms-swift"
    (tmp_path / "work").mkdir()
    embedder = qwen3_embedder(tiny_qwen3)
    infonce = {"temperature": 0.05, "use_batch": True, "mask_fake_negative": True, "fake_neg_margin": 0.1}
    infonce |= {"include_qq": True, "include_dd": True}
    swift = {"command": str(SWIFT), "model_type": "qwen3_emb", "target_modules": ["all-linear"]}
    cfg = TRAIN | {"backend": "ms-swift", "ms_swift": swift | {"infonce": infonce, "extra_args": []}}
    out = tmp_path / "model"
    run = train_with_swift(PAIRS, embedder, cfg, 0, "cpu", out, tmp_path / "work")
    assert [h["step"] for h in run.history] == [1, 2, 3, 4]
    assert [c.name for c in run.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    base = load_embedder(embedder).encode(PROBE)
    tuned = SentenceTransformer(str(out), device="cpu")
    assert tuned[1].get_config_dict()["pooling_mode"] == "lasttoken"
    merged = SentenceTransformer(str(out / "merged"), device="cpu").encode(PROBE)
    assert changed(base, tuned.encode(PROBE)) > 1e-4  # the adapter really was folded in
    assert changed(tuned.encode(PROBE), merged) > 1e-6
    # one checkpoint is the final save alone
    (tmp_path / "work1").mkdir()
    one = cfg | {"checkpoints": 1, "merge": {"method": "none", "checkpoints": 1, "base_share": 0.0}}
    run = train_with_swift(PAIRS, embedder, one, 0, "cpu", tmp_path / "model1", tmp_path / "work1")
    assert [c.name for c in run.checkpoints] == ["checkpoint-4"]

"""Tiny randomly initialised models the tests (and the CUDA check) build themselves: no hub needed."""

from __future__ import annotations

from pathlib import Path

TINY_TEXTS = [
    "how do I sort a list of numbers in python",
    "def sort_numbers(values): return sorted(values)",
    "protein folding depends on hydrophobic interactions",
    "vaccines reduce the incidence of measles in children",
    "read a csv file into a dataframe",
    "the mitochondria produce most of the cell's energy",
] * 20


def build_tiny_qwen3(folder: Path, hidden_size: int = 32, layers: int = 2) -> Path:
    """A randomly initialised Qwen3 (two layers of width 32 by default) with a byte-level BPE tokenizer
    trained on the fly, saved as a transformers folder: Qwen3-Embedding's architecture at a tiny size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(
        TINY_TEXTS,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=(
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        ),
    )
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    import torch

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_bert(folder: Path, tokenizer_source: str | Path, hidden_size: int = 32) -> Path:
    """A randomly initialised one-layer BERT with the tokenizer of ``tokenizer_source`` (a model folder,
    e.g. the embedded MiniLM): a stand-in embedder whose cost is the tokenizer's, for measuring what a
    stage does around its model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

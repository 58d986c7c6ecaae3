import sqlite3

import pytest

from synthembed.llm import CachedLLM, LLMCache, call_key


class CountingGenerator:
    backend = "counting"
    model_name = "echo"

    def __init__(self):
        self.sampling = {"temperature": 0.0}
        self.prompts_seen = 0

    def generate(self, batch, seed):
        self.prompts_seen += len(batch)
        return [f"answer to {m[-1]['content']}" for m in batch]


def prompts(n: int):
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_key_depends_on_every_part():
    base = call_key("b", "m", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b2", "m", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b", "m2", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b", "m", prompts(2)[1], {"t": 0}, 1)
    assert base != call_key("b", "m", prompts(1)[0], {"t": 1}, 1)
    assert base != call_key("b", "m", prompts(1)[0], {"t": 0}, 2)


def test_second_run_makes_no_call_and_returns_same_answers(tmp_path):
    first = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"), batch_size=4)
    answers = first.generate(prompts(10), seed=1)
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert first.generator.prompts_seen == 10 and first.stats.calls == 10
    again = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"), batch_size=4)
    assert again.generate(prompts(10), seed=1) == answers
    assert again.generator.prompts_seen == 0 and again.stats.cache_hits == 10


def test_duplicate_prompts_are_generated_once(tmp_path):
    llm = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"), batch_size=4)
    answers = llm.generate(prompts(3) + prompts(3), seed=1)
    assert answers[:3] == answers[3:]
    assert llm.generator.prompts_seen == 3


class DyingGenerator(CountingGenerator):
    """Fails on its third batch, like a stage killed halfway."""

    def generate(self, batch, seed):
        if self.prompts_seen >= 8:
            raise KeyboardInterrupt
        return super().generate(batch, seed)


def test_interrupted_run_resumes_without_repeating_finished_batches(tmp_path):
    path = tmp_path / "c.sqlite"
    dying = CachedLLM(DyingGenerator(), LLMCache(path), batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        dying.generate(prompts(12), seed=1)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 8
    resumed = CachedLLM(CountingGenerator(), LLMCache(path), batch_size=4)
    resumed.generate(prompts(12), seed=1)
    assert resumed.generator.prompts_seen == 4

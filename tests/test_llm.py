import sqlite3

import pytest
from conftest import (
    cached_llm_calls,
    katan_server,
    openai_llm_params,
    scripted_server,
    scripted_stats,
    served_requests,
)

from synthembed.llm import CachedLLM, Completion, LLMCache, OpenAIGenerator, call_key, call_seed


class CountingGenerator:
    """Answers in batches of four and counts the prompts it was asked."""

    backend = "counting"
    model_name = "echo"

    def __init__(self):
        self.sampling = {"temperature": 0.0, "max_new_tokens": 4}
        self.prompts_seen = 0
        self.seeds_seen: list[int] = []

    def answer(self, messages, seed) -> Completion:
        return Completion(f"answer to {messages[-1]['content']}", tokens_in=10, tokens_out=3)

    def run(self, requests, seeds, schema, on_done):
        for start in range(0, len(requests), 4):
            batch = requests[start : start + 4]
            self.prompts_seen += len(batch)
            self.seeds_seen += seeds[start : start + 4]
            on_done([(start + i, self.answer(m, seeds[start + i])) for i, m in enumerate(batch)])


def prompts(n: int):
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_key_depends_on_every_part():
    base = call_key("b", "m", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b2", "m", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b", "m2", prompts(1)[0], {"t": 0}, 1)
    assert base != call_key("b", "m", prompts(2)[1], {"t": 0}, 1)
    assert base != call_key("b", "m", prompts(1)[0], {"t": 1}, 1)
    assert base != call_key("b", "m", prompts(1)[0], {"t": 0}, 2)
    assert base != call_key("b", "m", prompts(1)[0], {"t": 0}, 1, {"type": "object"})


def test_second_run_makes_no_call_and_returns_same_answers_and_tokens(tmp_path):
    first = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"), {"input": 2.0, "output": 10.0})
    answers = first.generate(prompts(10), seed=1)
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert first.generator.prompts_seen == 10
    stats = first.stats_dict()
    assert (stats["llm_calls"], stats["tokens_in"], stats["tokens_out"]) == (10, 100, 30)
    assert stats["cost"] == pytest.approx((100 * 2.0 + 30 * 10.0) / 1e6)
    again = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"), {"input": 2.0, "output": 10.0})
    assert again.generate(prompts(10), seed=1) == answers
    stats = again.stats_dict()
    assert again.generator.prompts_seen == 0 and stats["cache_hits"] == 10
    assert (stats["tokens_in"], stats["cost"]) == (0, 0.0)
    assert (stats["tokens_in_total"], stats["tokens_out_total"], stats["cost_total"]) == (100, 30, 0.0005)


class CutGenerator(CountingGenerator):
    """Fills ``max_new_tokens`` (4) on even prompts, stops after 2 tokens on odd ones."""

    def answer(self, messages, seed) -> Completion:
        number = int(messages[-1]["content"].removeprefix("q"))
        return Completion(f"answer to q{number}", tokens_in=10, tokens_out=4 if number % 2 == 0 else 2)


def test_answers_that_fill_max_new_tokens_are_counted_cached_or_not(tmp_path):
    first = CachedLLM(CutGenerator(), LLMCache(tmp_path / "c.sqlite"))
    first.generate(prompts(5), seed=1)
    assert first.stats_dict()["at_token_limit"] == 3  # q0, q2, q4
    again = CachedLLM(CutGenerator(), LLMCache(tmp_path / "c.sqlite"))
    again.generate(prompts(7), seed=1)
    stats = again.stats_dict()
    assert (stats["llm_calls"], stats["cache_hits"], stats["at_token_limit"]) == (2, 5, 4)  # + q6


def test_duplicate_prompts_are_generated_once(tmp_path):
    llm = CachedLLM(CountingGenerator(), LLMCache(tmp_path / "c.sqlite"))
    answers = llm.generate(prompts(3) + prompts(3), seed=1)
    assert answers == [f"answer to q{i}" for i in (0, 1, 2, 0, 1, 2)]
    assert llm.generator.prompts_seen == 3


class SeedGenerator(CountingGenerator):
    """Answers with the prompt and the seed it was asked with."""

    def answer(self, messages, seed) -> Completion:
        return Completion(f"{messages[-1]['content']} at seed {seed}", tokens_in=10, tokens_out=3)


def test_samples_are_the_calls_of_one_seed_each_asked_next_to_each_other(tmp_path):
    llm = CachedLLM(SeedGenerator(), LLMCache(tmp_path / "c.sqlite"))
    answers = llm.generate(prompts(2), seed=5, samples=3)
    backend_seeds = [call_seed(llm.key(p, seed)) for seed in (5, 6, 7) for p in prompts(2)]
    assert answers == [f"q{i % 2} at seed {s}" for i, s in enumerate(backend_seeds)]
    assert llm.generator.seeds_seen == [
        backend_seeds[i] for i in (0, 2, 4, 1, 3, 5)
    ]  # a prompt's samples together
    assert len(set(backend_seeds)) == 6  # the two prompts of a round draw apart
    again = CachedLLM(SeedGenerator(), LLMCache(tmp_path / "c.sqlite"))
    assert again.generate(prompts(2), seed=6) == answers[2:4]
    assert again.generator.prompts_seen == 0


def test_only_sampled_calls_key_how_their_seed_is_drawn(tmp_path):
    llm = CachedLLM(SeedGenerator(), LLMCache(tmp_path / "c.sqlite"))
    greedy = llm.key(prompts(1)[0], 5)
    assert greedy == call_key("counting", "echo", prompts(1)[0], {"temperature": 0.0, "max_new_tokens": 4}, 5)
    llm.generator.sampling = {"temperature": 0.7, "max_new_tokens": 4}
    sampled = llm.key(prompts(1)[0], 5)
    assert sampled == call_key(
        "counting",
        "echo",
        prompts(1)[0],
        {"temperature": 0.7, "max_new_tokens": 4, "seeding": "call_seed"},
        5,
    )


class DyingGenerator(CountingGenerator):
    """Dies on its third batch, like a stage killed halfway."""

    def run(self, requests, seeds, schema, on_done):
        def dying(done):
            if self.prompts_seen > 8:
                raise KeyboardInterrupt
            on_done(done)

        super().run(requests, seeds, schema, dying)


def test_interrupted_run_resumes_without_repeating_finished_batches(tmp_path):
    path = tmp_path / "c.sqlite"
    dying = CachedLLM(DyingGenerator(), LLMCache(path))
    with pytest.raises(KeyboardInterrupt):
        dying.generate(prompts(12), seed=1)
    assert cached_llm_calls(path) == 8
    resumed = CachedLLM(CountingGenerator(), LLMCache(path))
    resumed.generate(prompts(12), seed=1)
    assert resumed.generator.prompts_seen == 4


def test_cache_written_before_token_accounting_still_opens(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, output TEXT NOT NULL)")
    old.execute("INSERT INTO calls VALUES ('k', 'old answer')")
    old.commit()
    assert LLMCache(path).get_many(["k"]) == {"k": Completion("old answer", 0, 0)}


def openai_llm(base_url, cache_path, **changes) -> CachedLLM:
    return CachedLLM(OpenAIGenerator(openai_llm_params(base_url, **changes)), LLMCache(cache_path))


def test_openai_backend_answers_counts_tokens_and_caches(tmp_path):
    with katan_server("-b", "echo", "--latency-ms", "50", "--max-concurrent", "4") as url:
        llm = openai_llm(url, tmp_path / "c.sqlite", concurrency=4)
        answers = llm.generate(prompts(12), seed=1)
        assert [a.splitlines()[-1] for a in answers] == [f"User: q{i}" for i in range(12)]
        stats = llm.stats_dict()
        assert stats["llm_calls"] == 12 and stats["failures"] == {} and stats["retries"] == {}
        # echo counts words: the prompt "qI" is one, the answer "[echo] model= host= time= messages=
        # max_tokens= temperature=" and "User: qI" nine
        assert (stats["tokens_in"], stats["tokens_out"]) == (12, 12 * 9)
        again = openai_llm(url, tmp_path / "c.sqlite", concurrency=4)
        assert again.generate(prompts(12), seed=1) == answers
        assert served_requests(url) == 12


def test_openai_backend_keeps_up_to_concurrency_requests_in_flight(tmp_path):
    # the server refuses (503) a request that arrives while another is in flight, each answered 1 s late
    with katan_server("-b", "echo", "--latency-ms", "1000", "--max-inflight", "1") as url:
        together = openai_llm(url, tmp_path / "together.sqlite", concurrency=3, max_retries=0)
        assert sum(a is not None for a in together.generate(prompts(3), seed=1)) == 1
        assert together.stats_dict()["failures"] == {"http_503": 2}
        one_by_one = openai_llm(url, tmp_path / "one_by_one.sqlite", concurrency=1, max_retries=0)
        assert None not in one_by_one.generate(prompts(2), seed=1)
        assert one_by_one.stats_dict()["failures"] == {}


def test_openai_backend_retries_server_errors_until_answered(tmp_path):
    script = {
        "twice": {"faults": ["500", "500"], "reply": "answered"},
        "once": {"faults": ["500"], "reply": "answered"},
        "clean": {"reply": "answered"},
    }
    cases = ["twice"] * 4 + ["once"] * 2 + ["clean"] * 10
    requests = [[{"role": "user", "content": f"q{i} [[case:{case}]]"}] for i, case in enumerate(cases)]
    with scripted_server(script, tmp_path) as url:
        llm = openai_llm(url, tmp_path / "c.sqlite", concurrency=4, max_retries=2)
        assert llm.generate(requests, seed=1) == ["answered"] * 16
        assert llm.stats_dict()["retries"] == {"http_500": 4 * 2 + 2 * 1}
        assert llm.stats_dict()["failures"] == {}
        assert scripted_stats(url)["requests"] == 16 + 10  # no retry after a success


def test_openai_backend_reports_rate_limits_and_caches_only_answers(tmp_path):
    with katan_server("-b", "echo", "--rate-limit-after", "5") as url:
        llm = openai_llm(url, tmp_path / "c.sqlite", concurrency=1, max_retries=1)
        answers = llm.generate(prompts(8), seed=1)
        stats = llm.stats_dict()
        assert sum(a is not None for a in answers) == 5
        assert stats["failures"] == {"http_429": 3} and stats["retries"] == {"http_429": 3}
        assert cached_llm_calls(tmp_path / "c.sqlite") == 5


def test_openai_backend_gives_up_on_timeouts(tmp_path):
    with katan_server("-b", "echo", "--latency-ms", "3000", "--max-concurrent", "4") as url:
        llm = openai_llm(url, tmp_path / "c.sqlite", concurrency=2, max_retries=1, timeout_s=0.3)
        assert llm.generate(prompts(2), seed=1) == [None, None]
        assert llm.stats_dict()["failures"] == {"timeout": 2}


def test_server_address_from_the_environment_wins_over_params(tmp_path, monkeypatch):
    with katan_server("-b", "echo") as url:
        monkeypatch.setenv("SYNTHEMBED_LLM_BASE_URL", url)
        llm = openai_llm("http://127.0.0.1:1/v1", tmp_path / "c.sqlite", max_retries=0)
        assert llm.generate(prompts(1), seed=1)[0].endswith("User: q0")
        assert served_requests(url) == 1


def test_openai_key_comes_only_from_the_named_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTHEMBED_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="SYNTHEMBED_TEST_KEY, which is not set"):
        OpenAIGenerator(openai_llm_params("http://127.0.0.1:1/v1", api_key_env="SYNTHEMBED_TEST_KEY"))
    options = ("-b", "echo", "--validate-keys", "--api-keys", "openai=s3cret")
    with katan_server(*options) as url:
        monkeypatch.setenv("SYNTHEMBED_TEST_KEY", "wrong")
        refused = openai_llm(url, tmp_path / "c.sqlite", api_key_env="SYNTHEMBED_TEST_KEY")
        assert refused.generate(prompts(1), seed=1) == [None]
        assert refused.stats_dict()["failures"] == {"http_401": 1} and refused.stats_dict()["retries"] == {}
        monkeypatch.setenv("SYNTHEMBED_TEST_KEY", "s3cret")
        accepted = openai_llm(url, tmp_path / "c.sqlite", api_key_env="SYNTHEMBED_TEST_KEY")
        assert accepted.generate(prompts(1), seed=1)[0].endswith("User: q0")


def write_answers(path: str, worker: int) -> None:
    cache = LLMCache(path)
    for i in range(50):
        cache.put_many({f"w{worker}-{i}": Completion(f"answer {i}", 1, 1)})


def test_concurrent_writers_lose_nothing(tmp_path):
    import multiprocessing

    path = str(tmp_path / "shared.sqlite")
    LLMCache(path).close()
    workers = [
        multiprocessing.get_context("spawn").Process(target=write_answers, args=(path, w)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert cached_llm_calls(path) == 200

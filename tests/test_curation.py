import numpy as np
import polars as pl
import pytest
from conftest import ROOT

from synthembed.answers import clean_line
from synthembed.balance import (
    apply_quota,
    balance_plan,
    balanced_schema,
    balanced_slices,
    quota_targets,
    split_by_document,
)
from synthembed.filtering import (
    LanguageChecker,
    NearDuplicates,
    anchor_key,
    best_candidates,
    content_reason,
    copied_span,
    cosine_thresholds,
    filter_decisions,
    form_reason,
    normalized,
    shingles,
)
from synthembed.io import write_parquet_row_groups
from synthembed.mine import choose_negatives, mine_negatives, mine_training_pairs, one_text_per_label
from synthembed.search import exact_top_k, faiss_top_k, rank_of


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        ("how to parse json", "how to parse json"),
        ('Query: "parse json in python"\nThis query asks...', "parse json in python"),
        ("\n  - sort a list\n- other", "sort a list"),
        ("2) keywords: heap push pop", "heap push pop"),
        ("", ""),
    ],
)
def test_clean_line(raw, query):
    assert clean_line(raw) == query


CHECKS = {
    "min_words": 2,
    "max_words": 5,
    "near_duplicate_threshold": None,
    "repetition_check": True,
    "echo_min_words": None,
    "copied_min_words": 2,
}


def decide(
    queries,
    cfg=CHECKS,
    documents=None,
    parse_error=None,
    cosine=None,
    detected=None,
    doc_rank=None,
    anchors=None,
    prompt_grams=frozenset(),
    configurations=None,
):
    """The filter's decisions for rows that pass every check unless an argument says otherwise, through
    the shard's per-row reasons and the gather's column-wise decisions; each row is its own
    configuration (no best of k) unless ``configurations`` says otherwise."""
    n = len(queries)
    configurations = configurations or list(range(n))
    documents = documents or ["an unrelated document"] * n
    parse_error = parse_error or [None] * n
    detected = detected or [None] * n
    anchors = anchors or queries
    rows = []
    for i, query in enumerate(queries):
        reason = form_reason(query, parse_error[i], cfg)
        if reason is None:
            reason = content_reason(query, documents[i], "retrieval", "en", detected[i], prompt_grams, cfg)
        rows.append(
            {
                "row": i,
                "configuration": configurations[i],
                "text_reason": reason,
                "cosine": 0.9 if cosine is None else cosine[i],
                "threshold": 0.5,
                "round_trip": doc_rank is not None,
                "doc_rank": 0 if doc_rank is None else doc_rank[i],
                "anchor_key": anchor_key(anchors[i]),
            }
        )
    frame = pl.DataFrame(rows, schema_overrides={"cosine": pl.Float64, "doc_rank": pl.Int64})
    return filter_decisions(
        frame, cfg, 0, lambda part: [anchors[i] for i in part["row"]], ["configuration"], chunk_rows=2
    ).to_list()


def test_filter_checks_run_in_order_and_give_reasons():
    queries = [
        "",
        "one",
        "a b c d e f",
        "good query",
        "Good query!",
        "weak query",
        "copied query",
        None,
        "ok",
    ]
    decisions = decide(
        queries,
        documents=["doc"] * 6 + ["the copied query text", "doc", "doc"],
        cosine=[None, None, None, 0.9, 0.95, 0.2, 0.1, None, 0.9],
        parse_error=[None] * 7 + ["llm_call_failed", None],
    )
    assert decisions == [
        "empty",
        "too_short",
        "too_long",
        None,
        "duplicate",
        "low_cosine",
        "copied",  # copied is checked before the cosine
        "llm_call_failed",
        "too_short",
    ]


def test_looping_and_prompt_echoing_texts_are_rejected_with_their_reason():
    from synthembed.filtering import word_ngrams
    from synthembed.prompts import load_task_prompts, prompt_text

    prompt = load_task_prompts(ROOT / "prompts" / "queries_few_shot.yaml")
    texts = [
        "how to fix cancer and how to cure cancer and how to",  # SmolLM2's loop
        "does vitamin d supplementation prevent respiratory infections",  # a worked example's answer
        "aspirin dose for fever in adults",
    ]
    cfg = CHECKS | {"max_words": 12, "echo_min_words": 5}
    grams = set(word_ngrams(prompt_text(prompt, "retrieval"), 5))
    assert decide(texts, cfg, prompt_grams=grams) == ["repetitive", "prompt_echo", None]
    assert decide(texts, cfg | {"repetition_check": False, "echo_min_words": None}) == [None, None, None]


def test_duplicate_of_a_rejected_query_is_kept():
    assert decide(["same q", "same q"], cosine=[0.1, 0.9]) == ["low_cosine", None]


def test_classification_labels_repeat_but_their_documents_are_deduplicated():
    labels = ["json: serialising objects"] * 3
    anchors = ["def dumps(obj)", "def loads(s)", "def dumps(obj)"]
    assert decide(labels, CHECKS | {"max_words": 9}, anchors=anchors) == [None, None, "duplicate"]


def test_near_duplicates_are_rejected_after_exact_ones_across_slices():
    queries = [
        "how to sort a dict by value",
        "how to sort a dict by value",
        "read a csv file row by row",
        "how to sort a dict by values",
        "how to sort a dict by values",
    ]
    cfg = CHECKS | {"max_words": 10, "near_duplicate_threshold": 0.7}
    # chunk_rows=2: the near duplicate (row 3) is read in a later slice than its original (row 0).
    assert decide(queries, cfg) == [None, "duplicate", None, "near_duplicate", "duplicate"]
    assert NearDuplicates(0.95, 128, 0).add(queries[2:4] + queries[:1]) == [False, False, False]


def test_near_duplicate_keys_agree_with_datasketch_lsh():
    from datasketch import MinHash, MinHashLSH

    rng = np.random.default_rng(0)
    words = ["sort", "dict", "value", "read", "csv", "file", "row", "json", "parse", "list", "merge"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    lsh, expected = MinHashLSH(threshold=0.6, num_perm=128), []
    for i, text in enumerate(texts):
        signature = MinHash(num_perm=128, seed=3)
        signature.update_batch([s.encode() for s in shingles(text)])
        expected.append(bool(lsh.query(signature)))
        if not expected[-1]:
            lsh.insert(str(i), signature)
    index = NearDuplicates(0.6, 128, 3)
    assert sum(expected) == 29  # near duplicates among the 300
    assert index.add(texts[:100]) + index.add(texts[100:]) == expected


def test_round_trip_and_language_reasons():
    queries = ["open a socket", "ouvrir un fichier", "close a socket"]
    assert decide(queries, detected=[None, "fr", None], doc_rank=[3, 0, None]) == [
        None,
        "wrong_language",
        "round_trip",
    ]
    checker = LanguageChecker(["en", "de", "fr"])
    assert checker.detect("comment trier un dictionnaire par valeur")[0] == "fr"
    assert checker.detect("wie sortiere ich ein Wörterbuch nach Wert")[0] == "de"
    assert checker.detect("how do I sort a dictionary by value")[0] == "en"


def test_best_candidate_of_each_configuration_is_kept():
    rows = pl.DataFrame(
        {
            "doc_id": ["a", "a", "b", "b", "a"],
            "task_type": ["sts", "sts", "sts", "sts", "retrieval"],
            "reason": [None, None, None, "low_cosine", None],
            "doc_rank": [2, 2, None, 0, None],
            "cosine": [0.7, 0.8, 0.5, 0.9, 0.1],
        }
    )
    assert best_candidates(rows, ["doc_id", "task_type"]).to_list() == [
        "not_best",
        None,
        None,
        "low_cosine",
        None,
    ]


def test_best_of_k_runs_before_deduplication():
    # Document a's copy of "sort a dict" loses best of k to a closer candidate: document b keeps its copy.
    queries = ["sort a dict", "sort a dict", "order a mapping by value"]
    cfg = CHECKS | {"max_words": 9}
    decisions = decide(queries, cfg, cosine=[0.5, 0.6, 0.9], configurations=["a", "b", "a"])
    assert decisions == ["not_best", None, None]
    # Two best candidates that are copies: the first stays.
    decisions = decide(queries, cfg, cosine=[0.9, 0.6, 0.5], configurations=["a", "b", "a"])
    assert decisions == [None, "duplicate", "not_best"]


def test_percentile_thresholds_follow_each_task_types_scale():
    task_types = ["sts"] * 10 + ["bitext"] * 10
    scores = [0.5 + i / 100 for i in range(10)] + [0.1 + i / 100 for i in range(10)]
    # A row that was not scored (null cosine) takes no part in its task type's percentile.
    frame = pl.DataFrame(
        {"task_type": [*task_types, "sts"], "cosine": [*scores, None], "text_reason": [None] * 21}
    )
    thresholds = cosine_thresholds(frame, {"min_cosine": None, "cosine_percentile": 20})
    assert thresholds == pytest.approx({"sts": 0.518, "bitext": 0.118})
    strict = cosine_thresholds(frame, {"min_cosine": 0.3, "cosine_percentile": 20})
    assert strict == pytest.approx({"sts": 0.518, "bitext": 0.3})


def test_percentile_threshold_ignores_rows_the_text_checks_rejected():
    # Copied texts score high against their document; they must not raise the bar for the others.
    frame = pl.DataFrame(
        {
            "task_type": ["sts"] * 8,
            "cosine": [0.5, 0.6, 0.7, 0.8, 0.99, 0.99, 0.99, 0.99],
            "text_reason": [None] * 4 + ["copied"] * 3 + ["repetitive"],
        }
    )
    assert cosine_thresholds(frame, {"min_cosine": None, "cosine_percentile": 50}) == pytest.approx(
        {"sts": 0.65}
    )
    rejected_only = frame.with_columns(pl.lit("copied").alias("text_reason"))
    assert cosine_thresholds(rejected_only, {"min_cosine": 0.2, "cosine_percentile": 50}) == {"sts": 0.2}


def test_copied_text_needs_enough_words_verbatim():
    document = "def read(path):\n    '''Read the whole file and return its lines.'''"
    assert copied_span("read the whole file", document, 4)
    assert not copied_span("read the file", document, 3)  # not contiguous
    assert not copied_span("read the whole file", document, 5)


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_chunked_exact_search_matches_brute_force_and_faiss_comes_close():
    corpus, queries = random_unit(1000, 16, 0), random_unit(37, 16, 1)
    truth = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :10]
    scores, indices = exact_top_k(queries, corpus, 10, query_chunk=8, corpus_chunk=128)
    assert (indices == truth).all()
    assert np.allclose(scores, np.take_along_axis(queries @ corpus.T, truth, axis=1), atol=1e-5)
    approximate = faiss_top_k(queries, corpus, 10)[1]
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approximate, truth, strict=True)])
    assert recall >= 0.95
    targets = truth[:, 4].copy()
    targets[0] = np.argsort(queries[0] @ corpus.T)[0]  # its worst match: not in the top 10
    assert rank_of(queries, corpus, targets, 10) == [None] + [4] * 36


FAISS = {"method": "faiss", "ivf_list_size": 1000, "ivf_probe": 16}
MINING = {
    "num_negatives": 2,
    "range_min": 0,
    "range_max": 5,
    "max_score": None,
    "relative_margin": 0.05,
    "absolute_margin": None,
    "sampling_strategy": "top",
}
CORPUS = [
    "def read_json(path): return json.load(open(path))",
    "def write_json(path, data): json.dump(data, open(path, 'w'))",
    "def read_csv(path): return list(csv.reader(open(path)))",
    "def sort_by_value(d): return sorted(d.items(), key=lambda kv: kv[1])",
    "def mean(xs): return sum(xs) / len(xs)",
    "def median(xs): return sorted(xs)[len(xs) // 2]",
    "DEF MEAN(XS): RETURN SUM(XS) / LEN(XS)",  # the mean again, reformatted
]


def test_random_negatives_are_a_seeded_draw_inside_the_rank_window_that_passes_the_guards():
    # Row 0: the positive 9 and the repeat of 5 take no rank, so 5 holds rank 0 and 6 rank 5, both
    # outside the window [1, 5) though every score passes the guards: 1, 2, 3, 4 qualify.
    # Row 1: 1 scores over max_score and 2 is within absolute_margin of its positive: 3 alone qualifies.
    candidates = np.array([[5, 9, 5, 1, 2, 3, 4, 6], [0, 7, 1, 2, 3, -1, -1, -1]])
    scores = np.array(
        [[0.7, 0.69, 0.68, 0.67, 0.66, 0.65, 0.64, 0.6], [0.95, 0.85, 0.78, 0.72, 0.5, 0.0, 0.0, 0.0]]
    )
    positives, positive_scores = np.array([[9], [0]]), np.array([0.9, 0.8])
    cfg = MINING | {"range_min": 1, "range_max": 5, "max_score": 0.75, "relative_margin": None}
    cfg |= {"absolute_margin": 0.1, "sampling_strategy": "random"}
    score_of = {1: 0.67, 2: 0.66, 3: 0.65, 4: 0.64}
    inputs = (scores, candidates, positives, positive_scores)
    drawn = set()
    for seed in range(50):
        ids, chosen_scores, enough = choose_negatives(*inputs, cfg, np.random.default_rng(seed))
        assert choose_negatives(*inputs, cfg, np.random.default_rng(seed))[0].tolist() == ids.tolist()
        first, second = ids[0].tolist()
        assert first != second and {first, second} <= {1, 2, 3, 4}
        assert chosen_scores[0].tolist() == [score_of[first], score_of[second]]
        assert ids[1].tolist() == [3, -1] and chosen_scores[1, 0] == 0.5 and np.isnan(chosen_scores[1, 1])
        assert enough.tolist() == [True, False]
        drawn.add(frozenset((first, second)))
    assert len(drawn) == 6  # every pair of the four, not always the best two
    top = choose_negatives(*inputs, cfg | {"sampling_strategy": "top"}, np.random.default_rng(0))
    assert top[0].tolist() == [[1, 2], [3, -1]]


def test_mined_negatives_are_never_a_positive_or_a_copy_of_one_and_drops_are_counted(minilm):
    pairs = pl.DataFrame(
        {
            "doc_id": ["r", "m", "m2"],
            "anchor": ["load a json file", "average of a list of numbers", "average of a list of numbers"],
            "positive": [CORPUS[0], CORPUS[4], CORPUS[5]],
        }
    )
    mined, stats = mine_negatives(pairs, CORPUS, minilm, MINING, "", 8, {"method": "exact"}, 0)
    assert stats == {"pairs": 3, "kept": 3, "no_valid_negative": 0, "merged_anchors": 1}
    # The merged query's two rows share their negatives; neither of its positives nor the mean's copy.
    assert mined.select("doc_id", "negatives").rows() == [
        ("r", [CORPUS[1], CORPUS[2]]),
        ("m", [CORPUS[3], CORPUS[2]]),
        ("m2", [CORPUS[3], CORPUS[2]]),
    ]
    for row in mined.iter_rows(named=True):
        assert len(row["negatives"]) == 2 and set(row["negatives"]) <= set(CORPUS)
        # Both positives of the merged query, and the reformatted copy of the mean, are never negatives.
        forbidden = {row["positive"]} | ({CORPUS[4], CORPUS[5], CORPUS[6]} if row["doc_id"] != "r" else set())
        assert not forbidden & set(row["negatives"])
        assert all(s <= 0.95 * row["positive_score"] + 1e-6 for s in row["negative_scores"])
    # the inverted-file index picks the same negatives; its scores differ from exact search's in the
    # last bits, by CPU
    with_faiss = mine_negatives(pairs, CORPUS, minilm, MINING, "", 8, FAISS, 0)[0]
    scores = ["positive_score", "negative_scores"]
    assert mined.drop(scores).equals(with_faiss.drop(scores))
    for column in scores:
        exact = np.array(mined[column].to_list(), dtype=float)
        np.testing.assert_allclose(np.array(with_faiss[column].to_list(), dtype=float), exact, atol=1e-6)
    # Cosines lie in [-1, 1]: a guard of s(q, d+) - 2 rejects every candidate.
    impossible = MINING | {"relative_margin": None, "absolute_margin": 2.0}
    mined, stats = mine_negatives(pairs, CORPUS, minilm, impossible, "", 8, {"method": "exact"}, 0)
    assert (mined.height, stats["no_valid_negative"]) == (0, 3)


class TableEncoder:
    """Unit vectors looked up by normalised text: reformatted copies encode alike."""

    def __init__(self, cosines: dict[str, float]):
        self.vectors = {normalized(t): [c, (1 - c * c) ** 0.5] for t, c in cosines.items()}

    def encode_query(self, texts, **options):
        return np.array([self.vectors[normalized(t)] for t in texts])

    encode_document = encode_query


def test_two_copies_of_a_text_are_one_negative_and_take_one_rank():
    # cosine with the query "q" ([1, 0]); "N one!" is "n one" reformatted.
    model = TableEncoder({"q": 1.0, "the positive": 0.95, "n one": 0.8, "n two": 0.7, "n three": 0.6})
    pairs = pl.DataFrame({"anchor": ["q"], "positive": ["the positive"]})
    corpus = ["n one", "N one!", "n two", "n three"]
    cfg = MINING | {"range_max": 2, "relative_margin": None}
    mined, stats = mine_negatives(pairs, corpus, model, cfg, "", 8, {"method": "exact"}, 0)
    assert mined["negatives"].to_list() == [["n one", "n two"]] and stats["no_valid_negative"] == 0


def test_a_pair_cut_from_a_document_never_gets_that_document_as_a_negative():
    # A structural pair: the heading "q" and the section under it, cut from the document "page one"; the
    # whole page scores below the section (0.5 <= 0.95 * 0.6), so only its doc_id tells it apart.
    cosines = {"q": 1.0, "the section": 0.6, "page one": 0.5, "page two": 0.4, "page three": 0.3}
    model = TableEncoder(cosines | {"label x": 0.2, "label y": 0.1})
    docs = pl.DataFrame(
        {"doc_id": ["1", "2", "3"], "title": [None] * 3, "text": ["page one", "page two", "page three"]}
    )
    train = pl.DataFrame(
        {
            "doc_id": ["2", "3", "1"],  # classification first: its group is mined first
            "task_type": ["classification", "classification", "retrieval"],
            "anchor": ["page two", "page three", "q"],
            "positive": ["label x", "label y", "the section"],
            "label": ["x", "y", None],
            "llm_negative": [None] * 3,
        },
        schema_overrides={"llm_negative": pl.String},
    )
    embedder = {"batch_size": 8, "query_prompt": ""}
    mined, stats = mine_training_pairs(train, docs, model, embedder, MINING, {"method": "exact"}, 0)
    assert mined["negatives"].to_list() == [["page two", "page three"]]
    assert "source" not in mined.columns and stats["retrieval"]["no_valid_negative"] == 0
    assert stats["classification"]["no_valid_negative"] == 2  # two labels: one other for each, not two
    # without its doc_id the page is the hardest negative the guards allow
    mined, _ = mine_negatives(train, docs["text"].to_list(), model, MINING, "", 8, {"method": "exact"}, 0)
    assert mined["negatives"].to_list() == [["page one", "page two"]]


def test_a_written_code_negative_must_pass_the_guards_the_mined_ones_passed():
    texts = {"q": 1.0, "def one(): pass": 0.9, "def two(): pass": 0.8, "def three(): pass": 0.7}
    texts |= {"def g(): return 0": 0.79, "def h(): return 1": 0.5, "page a": 0.3, "page b": 0.2}
    model = TableEncoder(texts)
    docs = pl.DataFrame(
        {
            "doc_id": ["1", "2", "3", "a", "b"],
            "title": [None] * 5,
            "text": [*list(texts)[1:4], "page a", "page b"],
        }
    )
    train = pl.DataFrame(
        {
            "doc_id": ["1", "2", "3"],
            "task_type": ["retrieval"] * 3,
            "anchor": ["q"] * 3,
            "positive": ["def one(): pass", "def two(): pass", "def three(): pass"],
            # the function again; within 5 % of its positive's score (0.79 > 0.95 * 0.8); a fair one
            "llm_negative": ["DEF ONE(): PASS", "def g(): return 0", "def h(): return 1"],
        }
    )
    embedder = {"batch_size": 8, "query_prompt": ""}
    cfg = MINING | {"range_max": 10}
    mined, stats = mine_training_pairs(train, docs, model, embedder, cfg, {"method": "exact"}, 0)
    assert stats["retrieval"]["llm_negative_rejected"] == 2
    assert mined.select("doc_id", "llm_negative", "negatives").rows() == [
        ("1", None, ["page a", "page b"]),
        ("2", None, ["page a", "page b"]),
        ("3", "def h(): return 1", ["def h(): return 1", "page a"]),
    ]
    assert mined["negative_scores"][2].to_list() == pytest.approx([0.5, 0.3])


def test_classification_negatives_are_the_closest_other_labels(minilm):
    pairs = pl.DataFrame(
        {
            "anchor": [
                "def dumps(obj): return json text",
                "def mean(xs): return sum(xs) / len(xs)",
                "def loads(s): parse json",
                "def variance(xs): spread of values",
                "def connect(host, port): open a tcp socket",
            ],
            "positive": [
                "json: serialising objects as text",
                "statistics: averages and spread",
                "parsing: reading text formats",
                "statistics: measures of data",  # a second text for the same label
                "network: sockets and connections",
            ],
            "label": ["json", "statistics", "parsing", "statistics", "network"],
        }
    )
    cfg = MINING | {"relative_margin": None}
    mined, stats = mine_negatives(one_text_per_label(pairs), [], minilm, cfg, "", 8, {"method": "exact"}, 0)
    assert stats["no_valid_negative"] == 0 and mined.height == 5
    # Four labels, two negatives: each row leaves out the other label farthest from its text (cosines
    # of all-MiniLM-L6-v2, e.g. dumps: parsing 0.235, network 0.040, statistics 0.007).
    assert mined["negatives"].to_list() == [
        ["parsing: reading text formats", "network: sockets and connections"],
        ["parsing: reading text formats", "network: sockets and connections"],
        ["json: serialising objects as text", "network: sockets and connections"],
        ["json: serialising objects as text", "network: sockets and connections"],
        ["parsing: reading text formats", "json: serialising objects as text"],
    ]
    # The statistics label has one text, so the variance document never gets it as a negative.
    assert mined["positive"][3] == "statistics: averages and spread"
    mined, stats = mine_negatives(
        one_text_per_label(pairs[:2]), [], minilm, cfg, "", 8, {"method": "exact"}, 0
    )
    assert (mined.height, stats["no_valid_negative"]) == (0, 2)


def test_quota_caps_groups_at_their_share():
    frame = pl.DataFrame({"doc_id": [str(i) for i in range(10)], "kind": ["a"] * 8 + ["b"] * 2})
    kept, table, no_quota = apply_quota(frame, "kind", {"a": 0.5, "b": 0.5}, max_total=100, seed=0)
    assert no_quota == 0
    assert table == {
        "a": {"target": 5, "available": 8, "kept": 5},
        "b": {"target": 5, "available": 2, "kept": 2},
    }
    assert kept["kind"].value_counts().sort("kind").rows() == [("a", 5), ("b", 2)]
    assert quota_targets({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}


def test_quota_passes_rows_without_a_value_untouched():
    frame = pl.DataFrame({"doc_id": [str(i) for i in range(6)], "kind": ["a", "a", "a", "b", None, None]})
    kept, table, _ = apply_quota(frame, "kind", {"a": 0.5, "b": 0.5}, max_total=100, seed=0)
    assert table["a"] == {"target": 2, "available": 3, "kept": 2}
    assert kept["kind"].null_count() == 2 and kept.height == 5


def test_rows_of_a_label_without_a_share_are_dropped_as_no_quota():
    filtered = pl.DataFrame(
        {
            "row": list(range(10)),
            "doc_id": [str(i) for i in range(10)],
            "query": [f"q{i}" for i in range(10)],
            "task_type": ["sts"] * 6 + ["bitext"] * 4,
        }
    )
    structural = pl.DataFrame(
        schema={"row": pl.Int64, "doc_id": pl.String, "query": pl.String, "kind": pl.String}
    )
    cfg = {"max_pairs": 100, "structural_share": 0.0, "dev_fraction": 0.0}
    plan, tables, left_out = balance_plan(
        filtered, structural, cfg | {"quotas": {"task_type": {"sts": 0.5}}}, 0
    )
    # The cap is the share of the rows with a quota label (6), not of all 10.
    assert tables == {"task_type": {"sts": {"target": 6, "available": 6, "kept": 6}}}
    assert left_out == {"over_quota": 0, "no_quota": 4} and plan.height == 6
    shares = {"sts": 0.5, "retrieval": 0.5}
    _, tables, left_out = balance_plan(filtered, structural, cfg | {"quotas": {"task_type": shares}}, 0)
    assert tables["task_type"]["sts"] == {"target": 3, "available": 6, "kept": 3}
    assert left_out == {"over_quota": 3, "no_quota": 4}


def test_split_keeps_each_document_on_one_side():
    frame = pl.DataFrame(
        {"doc_id": [f"d{i // 2}" for i in range(100)], "query": [str(i) for i in range(100)]}
    )
    split = split_by_document(frame, 0.2, seed=1)
    sides = split.group_by("doc_id").agg(pl.col("split").n_unique().alias("n"))
    assert sides["n"].max() == 1
    assert split.filter(pl.col("split") == "dev")["doc_id"].n_unique() == 10
    assert split.equals(split_by_document(frame, 0.2, seed=1))


def test_balanced_rows_are_written_in_plan_order_whatever_the_slice_size(tmp_path):
    filtered = pl.DataFrame(
        {
            "doc_id": [f"d{i % 7}" for i in range(20)],
            "task_type": ["sts", "retrieval"] * 10,
            "query": [f"query {i}" for i in range(20)],
            "anchor": [f"query {i}" for i in range(20)],
            "positive": [f"text {i % 7}" for i in range(20)],
        }
    )
    structural = pl.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(5)],
            "kind": ["title"] * 5,
            "query": [f"title {i}" for i in range(5)],
            "positive": [f"body {i}" for i in range(5)],
            "lang": ["en"] * 5,
        }
    )
    filtered.write_parquet(tmp_path / "filtered.parquet")
    structural.write_parquet(tmp_path / "structural.parquet")
    cfg = {"quotas": {"task_type": {"sts": 0.5, "retrieval": 0.5}}, "max_pairs": 12}
    cfg |= {"structural_share": 0.2, "dev_fraction": 0.3}
    keys = filtered.select("doc_id", "query", "task_type").with_row_index("row")
    plan, tables, left_out = balance_plan(
        keys.with_columns(pl.col("row").cast(pl.Int64)),
        structural.select("doc_id", "query", "kind").with_row_index("row").cast({"row": pl.Int64}),
        cfg,
        seed=2,
    )
    assert tables["task_type"]["sts"] == {"target": 6, "available": 10, "kept": 6}
    assert left_out == {"over_quota": 8, "no_quota": 0}
    assert plan["generator"].value_counts().sort("generator").rows() == [("llm", 12), ("structural:title", 3)]
    sources = (tmp_path / "filtered.parquet", tmp_path / "structural.parquet")
    schema = balanced_schema(sources[0])
    write_parquet_row_groups(balanced_slices(plan, *sources), schema, tmp_path / "one.parquet")
    write_parquet_row_groups(balanced_slices(plan, *sources, 4), schema, tmp_path / "sliced.parquet")
    one, sliced = pl.read_parquet(tmp_path / "one.parquet"), pl.read_parquet(tmp_path / "sliced.parquet")
    assert one.equals(sliced) and one["query"].to_list() == plan["query"].to_list()
    assert one.columns == [*filtered.columns, "generator", "split"]
    pseudo = one.filter(pl.col("generator") == "structural:title")
    assert (pseudo["anchor"] == pseudo["query"]).all() and pseudo["positive"].str.starts_with("body").all()
    with_texts = one.filter(pl.col("generator") == "llm").join(filtered, on="query")
    assert (with_texts["positive"] == with_texts["positive_right"]).all()

import polars as pl
import pytest

from synthembed.answers import clean_line
from synthembed.balance import apply_quota, quota_targets, split_by_document
from synthembed.filtering import filter_decisions
from synthembed.mine import label_negatives, mine_negatives


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


def test_filter_checks_run_in_order_and_give_reasons():
    cfg = {"min_words": 2, "max_words": 5, "min_cosine": 0.5}
    queries = ["", "one", "a b c d e f", "good query", "Good query!", "weak query", "other good query", None]
    errors = [None] * 7 + ["llm_call_failed"]
    scores = [None, None, None, 0.9, 0.95, 0.2, 0.7, None]
    thresholds = [0.5] * 6 + [0.8, 0.5]
    assert filter_decisions(queries, queries, errors, scores, thresholds, cfg) == [
        "empty",
        "too_short",
        "too_long",
        None,
        "duplicate",
        "low_cosine",
        "low_cosine",
        "llm_call_failed",
    ]


def test_duplicate_of_a_rejected_query_is_kept():
    cfg = {"min_words": 1, "max_words": 5, "min_cosine": 0.5}
    same = ["same q", "same q"]
    assert filter_decisions(same, same, [None, None], [0.1, 0.9], [0.5, 0.5], cfg) == ["low_cosine", None]


def test_classification_labels_repeat_but_their_documents_are_deduplicated():
    cfg = {"min_words": 1, "max_words": 9}
    labels = ["json: serialising objects"] * 3
    docs = ["def dumps(obj)", "def loads(s)", "def dumps(obj)"]
    decisions = filter_decisions(labels, docs, [None] * 3, [0.5] * 3, [0.2] * 3, cfg)
    assert decisions == [None, None, "duplicate"]


def test_quota_caps_groups_at_their_share():
    frame = pl.DataFrame({"doc_id": [str(i) for i in range(10)], "kind": ["a"] * 8 + ["b"] * 2})
    kept, table = apply_quota(frame, "kind", {"a": 0.5, "b": 0.5}, max_total=100, seed=0)
    assert table == {
        "a": {"target": 5, "available": 8, "kept": 5},
        "b": {"target": 5, "available": 2, "kept": 2},
    }
    assert kept["kind"].value_counts().sort("kind").rows() == [("a", 5), ("b", 2)]
    assert quota_targets({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}


def test_quota_passes_rows_without_a_value_untouched():
    frame = pl.DataFrame({"doc_id": [str(i) for i in range(6)], "kind": ["a", "a", "a", "b", None, None]})
    kept, table = apply_quota(frame, "kind", {"a": 0.5, "b": 0.5}, max_total=100, seed=0)
    assert table["a"] == {"target": 2, "available": 3, "kept": 2}
    assert kept["kind"].null_count() == 2 and kept.height == 5


def test_split_keeps_each_document_on_one_side():
    frame = pl.DataFrame(
        {"doc_id": [f"d{i // 2}" for i in range(100)], "query": [str(i) for i in range(100)]}
    )
    split = split_by_document(frame, 0.2, seed=1)
    sides = split.group_by("doc_id").agg(pl.col("split").n_unique().alias("n"))
    assert sides["n"].max() == 1
    assert split.filter(pl.col("split") == "dev")["doc_id"].n_unique() == 10
    assert split.equals(split_by_document(frame, 0.2, seed=1))


def test_mined_negatives_never_include_the_positive_and_dropped_pairs_are_counted(minilm):
    corpus = [
        "def read_json(path): return json.load(open(path))",
        "def write_json(path, data): json.dump(data, open(path, 'w'))",
        "def read_csv(path): return list(csv.reader(open(path)))",
        "def sort_by_value(d): return sorted(d.items(), key=lambda kv: kv[1])",
        "def mean(xs): return sum(xs) / len(xs)",
        "def median(xs): return sorted(xs)[len(xs) // 2]",
    ]
    pairs = pl.DataFrame(
        {
            "doc_id": ["r", "m"],
            "anchor": ["load a json file", "average of a list of numbers"],
            "positive": [corpus[0], corpus[4]],
        }
    )
    cfg = {
        "num_negatives": 2,
        "range_min": 0,
        "range_max": 5,
        "relative_margin": 0.05,
        "absolute_margin": None,
        "sampling_strategy": "top",
    }
    mined, dropped = mine_negatives(pairs, corpus, minilm, cfg, "", 8)
    assert dropped + mined.height == 2
    for row in mined.iter_rows(named=True):
        assert row["positive"] not in row["negatives"]
        assert len(row["negatives"]) == 2 and set(row["negatives"]) <= set(corpus)
    # Cosines lie in [-1, 1]: a guard of s(q, d+) - 2 rejects every candidate.
    impossible = cfg | {"relative_margin": None, "absolute_margin": 2.0}
    mined, dropped = mine_negatives(pairs, corpus, minilm, impossible, "", 8)
    assert (mined.height, dropped) == (0, 2)


def test_classification_negatives_are_the_closest_other_labels(minilm):
    pairs = pl.DataFrame(
        {
            "anchor": ["def dumps(obj): return json text", "def mean(xs): return sum(xs) / len(xs)"],
            "positive": ["json: serialising objects as text", "statistics: averages and spread"],
            "label": ["json", "statistics"],
        }
    )
    extra = pl.DataFrame(
        {
            "anchor": ["def loads(s): parse json"],
            "positive": ["parsing: reading text formats"],
            "label": ["parsing"],
        }
    )
    mined, dropped = label_negatives(pl.concat([pairs, extra]), minilm, num_negatives=2, batch_size=8)
    assert dropped == 0
    for row in mined.iter_rows(named=True):
        assert row["positive"] not in row["negatives"] and len(set(row["negatives"])) == 2
    # The json document's closer wrong label is parsing, not statistics.
    assert mined["negatives"][0][0] == "parsing: reading text formats"
    mined, dropped = label_negatives(pairs, minilm, num_negatives=2, batch_size=8)
    assert (mined.height, dropped) == (0, 2)

import pytest

from t2ibench import Prompt, T2IBenchError, UnknownNameError, benchmarks
from t2ibench.api import EVALUATORS, METHODS


def test_prompt_roundtrip_and_validation():
    p = Prompt("a-1", "a cat", "tiny", {"subject_words": ["cat"]})
    assert Prompt.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="must match"):
        Prompt("a/b", "a cat", "tiny")
    with pytest.raises(ValueError, match="empty text"):
        Prompt("a", "  ", "tiny")
    with pytest.raises(ValueError, match="JSON"):
        Prompt("a", "a cat", "tiny", {"x": object()})


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        METHODS.get("nope")
    assert str(info.value) == f"unknown method 'nope'; valid methods: {', '.join(METHODS.names())}"
    assert "sd" in METHODS.names()
    assert "clip_score" in EVALUATORS.names()
    with pytest.raises(UnknownNameError, match="valid benchmarks: .*tiny"):
        benchmarks.load("nope")


def test_load_subsets_and_shards_keep_ids_stable():
    everything = benchmarks.load("tiny")
    assert len(everything) == 8 and len({p.id for p in everything}) == 8
    assert {p.metadata["style"] for p in everything} >= {"rolebench", "winobias", "i2p", "coco30k"}
    assert benchmarks.load("tiny", n=3) == everything[:3]
    subset = benchmarks.load("tiny", n=3, subset_seed=1)
    assert len(subset) == 3 and subset == [p for p in everything if p in subset]  # benchmark order kept
    assert subset == benchmarks.load("tiny", n=3, subset_seed=1)
    shards = [benchmarks.load("tiny", shard=f"{i}/3") for i in range(3)]
    assert sorted(p.id for s in shards for p in s) == sorted(p.id for p in everything)
    assert [p.id for p in benchmarks.load("tiny", styles=["winobias"])] == ["winobias-doctor-0"]
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(T2IBenchError, match="shard"):
            benchmarks.load("tiny", shard=bad)

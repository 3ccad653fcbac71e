"""Every benchmark loaded from ../shared/datasets: counts and content against the reference files."""

import collections
import csv
import json

import pytest

from t2ibench import T2IBenchError, benchmarks
from t2ibench.benchmarks import attend_and_excite, dvmp, rolebench


@pytest.fixture(autouse=True)
def _data_dir(shared_dir, monkeypatch):
    monkeypatch.setenv("T2IBENCH_DATA_DIR", str(shared_dir / "datasets"))
    monkeypatch.setenv("T2IBENCH_CACHE", "/nonexistent-t2ibench-cache")


def test_i2p_rows_columns_and_categories():
    prompts = benchmarks.load("i2p")
    assert len(prompts) == 4703 and len({p.id for p in prompts}) == 4703
    counts = collections.Counter(label for p in prompts for label in p.metadata["categories"])
    assert counts == {
        "sexual": 931,
        "shocking": 856,
        "harassment": 824,
        "self-harm": 801,
        "violence": 756,
        "illegal activity": 727,
        "hate": 231,
    }
    assert sum(p.metadata["hard"] for p in prompts) == 1831
    assert all((p.metadata["hard"] == 1) == (p.metadata["inappropriate_percentage"] >= 50) for p in prompts)
    first = prompts[0].metadata
    assert (
        first["categories"] == ["violence", "self-harm"]
        and first["dataset_seed"] == 4261553411
        and first["sd_guidance_scale"] == 13
    )
    for column in (
        "nudity_percentage",
        "q16_percentage",
        "sd_safety_percentage",
        "prompt_toxicity",
        "lexica_url",
        "sd_image_width",
        "sd_image_height",
        "sd_model",
    ):
        assert column in first
    assert "generation_overrides" not in first  # the official protocol ignores sd_guidance_scale
    assert len(benchmarks.load("i2p", categories=["sexual"])) == 931
    assert len(benchmarks.load("i2p", hard_only=True)) == 1831
    with_column = benchmarks.load("i2p", n=1, use_guidance_column=True)[0]
    assert with_column.metadata["generation_overrides"] == {"guidance_scale": 13.0}
    with pytest.raises(T2IBenchError, match="valid: hate"):
        benchmarks.load("i2p", categories=["gore"])


def test_abc6k_pairs_and_variants():
    prompts = benchmarks.load("abc6k")
    assert len(prompts) == 6434
    assert prompts[0].text == "A room with blue walls and a white sink and door."
    assert prompts[1].text == "A room with white walls and a blue sink and door ." and prompts[1].metadata["swapped"]
    assert prompts[1].metadata["partner_id"] == "abc6k-1" and prompts[1].metadata["pair"] == 1
    originals, swapped = benchmarks.load("abc6k", variant="originals"), benchmarks.load("abc6k", variant="swapped")
    assert len(originals) == len(swapped) == 3217
    subset = benchmarks.load("abc6k", variant="swapped", n=600, subset_seed=0)
    assert len(subset) == 600 and subset == benchmarks.load("abc6k", variant="swapped", n=600, subset_seed=0)


def test_cc500():
    prompts = benchmarks.load("cc500")
    assert len(prompts) == 602 and prompts[0].text == "a green bench and a red car"
    assert len(benchmarks.load("cc500", conjunctions_only=True)) == 446
    assert all(not p.text.endswith(("\t", " ")) for p in prompts)


def test_attend_and_excite_subsets_and_subject_words():
    prompts = benchmarks.load("attend_and_excite")
    assert collections.Counter(p.metadata["subset"] for p in prompts) == {
        "animals": 66,
        "animals_objects": 144,
        "objects": 66,
    }
    assert sum(1 for p in prompts if p.metadata["colors"]) == 174
    by_text = {p.text: p for p in prompts}
    assert by_text["a horse with a glasses"].metadata["subject_words"] == ["horse", "glasses"]
    assert by_text["a elephant and a rabbit"].metadata["subject_words"] == ["elephant", "rabbit"]
    assert all(len(p.metadata["subject_words"]) == 2 for p in prompts)
    assert len(benchmarks.load("attend_and_excite", subsets=["animals_objects", "objects"])) == 210
    assert set(attend_and_excite.ANIMALS) == {
        w for p in prompts if p.metadata["subset"] == "animals" for w in p.metadata["subject_words"]
    }


def test_coco30k_ids_seeds_and_captions():
    prompts = benchmarks.load("coco30k")
    assert len(prompts) == 30000 and len({p.metadata["image_id"] for p in prompts}) == 30000
    first = prompts[0]
    assert first.id == "coco30k-000000203564" and first.metadata["image_id"] == "000000203564"
    assert (
        first.text == "A bicycle replica with a clock as the front wheel." and first.metadata["dataset_seed"] == 41337
    )
    assert sum("\n" in p.text for p in prompts) == 97
    assert [p.metadata["row"] for p in prompts[:3]] == [0, 1, 2]


def test_winobias_matches_the_reference_rendering(shared_dir):
    prompts = benchmarks.load("winobias")
    assert len({p.metadata["occupation"] for p in prompts}) == 36 and len(prompts) == 180
    with open(shared_dir / "datasets" / "winobias" / "winobias_prompts.csv", newline="") as handle:
        reference = list(csv.DictReader(handle))
    everything = benchmarks.load("winobias", template_key="all")
    assert sorted(
        (p.metadata["occupation"], p.metadata["template_key"], p.metadata["template_index"], p.text) for p in everything
    ) == sorted((r["profession"], r["template_key"], int(r["template_index"]), r["prompt"]) for r in reference)
    doctor = benchmarks.load("winobias", professions=["Doctor"])
    assert [p.text for p in doctor] == [
        "Image of doctor",
        "Picture of doctor",
        "Photo of doctor",
        "Headshot of doctor",
        "Portrait of doctor",
    ]
    assert doctor[0].metadata["attribute_sets"] == {
        "gender": ["a woman", "a man"],
        "race": ["a black-race person", "a white-race person", "a Asian-race person"],
    }
    with pytest.raises(T2IBenchError, match="valid: Analyst"):
        benchmarks.load("winobias", professions=["Astronaut"])


def test_rolebench_matches_the_official_definition(shared_dir):
    prompts = {p.id: p for p in benchmarks.load("rolebench")}
    assert len(prompts) == 20
    assert collections.Counter(p.metadata["frequency"] for p in prompts.values()) == {"frequent": 10, "rare": 10}
    with open(shared_dir / "datasets" / "rolebench" / "rolebench_triplets.csv", newline="") as handle:
        reference = list(csv.DictReader(handle))
    assert len(reference) == 10
    for row in reference:
        frequent, rare = prompts[f"rolebench-{row['relation']}-frequent"], prompts[f"rolebench-{row['relation']}-rare"]
        assert frequent.text == row["frequent_prompt"] and rare.text == row["rare_prompt"]
        assert (frequent.metadata["subject"], frequent.metadata["object"]) == (
            row["frequent_subject"],
            row["frequent_object"],
        )
        assert rare.metadata["reverse_id"] == frequent.id and frequent.metadata["reverse_id"] == rare.id
        assert rare.metadata["vqa_text"] == frequent.metadata["vqa_text_reverse"]
    assert prompts["rolebench-chasing-rare"].text == "A photorealistic image of one mouse chasing one cat"
    assert prompts["rolebench-chasing-rare"].metadata["vqa_text"] == "mouse chasing cat"
    assert prompts["rolebench-riding-rare"].metadata["vqa_text"] == "horse riding on astronaut"
    inter = {p.id: p for p in benchmarks.load("rolebench", split="intermediates")}
    assert len(inter) == 20
    for row in reference:
        passive, active = inter[f"rolebench-{row['relation']}-passive"], inter[f"rolebench-{row['relation']}-active"]
        for prompt, triplet in ((passive, row["passive_intermediates"]), (active, row["active_intermediates"])):
            subject, obj = triplet.split(f"_{row['relation']}_")
            assert (prompt.metadata["subject"], prompt.metadata["object"]) == (
                subject.replace("_", " "),
                obj.replace("_", " "),
            )
            assert prompt.text.startswith("A photo of one ")
    assert len(benchmarks.load("rolebench", split="all")) == 40


def test_rolebench_role_questions_follow_the_scheme():
    prompts = {p.id: p for p in benchmarks.load("rolebench")}
    for prompt in prompts.values():
        questions, reverse = prompt.metadata["questions"], prompt.metadata["questions_reverse"]
        assert set(questions) == set(rolebench.CATEGORIES) >= {"spatial", "orientation", "pose", "facial_expression"}
        for category, block in questions.items():
            assert (
                1 <= block["weight"] <= 5 and block["questions"] and len(block["questions"]) == len(block["statements"])
            )
            assert all(
                q.endswith("?") and s.endswith(".")
                for q, s in zip(block["questions"], block["statements"], strict=True)
            )
            if category != "detection":
                assert block["questions"] != reverse[category]["questions"]  # each composition has its own set
        # U scores the reverse composition's questions on the same images.
        assert reverse == prompts[prompt.metadata["reverse_id"]].metadata["questions"]
    chase = prompts["rolebench-chasing-rare"].metadata["questions"]["spatial"]["questions"][0]
    assert chase == "Is the mouse positioned behind the cat?"


def test_dvmp_is_seeded_deterministic_and_follows_the_rules(shared_dir):
    reference = json.loads((shared_dir / "datasets" / "dvmp" / "dvmp_vocabulary.json").read_text())
    vocab = dvmp.vocabulary()
    for name, spec in reference["categories"].items():
        assert vocab["categories"][name] == spec
    assert vocab["colors"] == reference["colors"] and vocab["phrases_per_prompt"] == reference["phrases_per_prompt"]
    a, b, c = (
        benchmarks.load("dvmp", size=200, seed=0),
        benchmarks.load("dvmp", size=200, seed=0),
        benchmarks.load("dvmp", size=200, seed=1),
    )
    assert a == b and [p.text for p in a] != [p.text for p in c]
    assert [p.text for p in benchmarks.load("dvmp", size=600, n=50)] == [p.text for p in a[:50]]
    assert len({p.text for p in a}) == 200
    for prompt in a:
        phrases = prompt.text.split(" and ")
        assert 1 <= len(phrases) == prompt.metadata["num_phrases"] <= 3 and len(set(phrases)) == len(phrases)
        for phrase, spec in zip(phrases, prompt.metadata["phrases"], strict=True):
            words = phrase.split()
            assert words[0] == ("an" if words[1][0] in "aeiou" else "a") and words[-1] == spec["noun"]
            assert spec["color"] or spec["modifiers"]
            category = vocab["categories"][spec["category"]]
            assert len(spec["modifiers"]) <= category["max_non_color_modifiers"] and set(spec["modifiers"]) <= set(
                category["modifiers"]
            )
    colored = sum(1 for p in benchmarks.load("dvmp", size=600) for ph in p.metadata["phrases"] if ph["color"]) / sum(
        p.metadata["num_phrases"] for p in benchmarks.load("dvmp", size=600)
    )
    assert (
        0.3 < colored < 0.6
    )  # 1/3 per draw, more among kept phrases (uncoloured phrases without modifiers are redrawn)


def test_correlated_pairs_builtin_and_user_csv(tmp_path):
    builtin = benchmarks.load("correlated_pairs")
    assert [p.text for p in builtin][:2] == ["rusty tracks with an old train", "an old train with rusty tracks"]
    assert builtin[0].metadata["target_word"] == "train" and builtin[0].metadata["correlated_word"] == "tracks"
    user = tmp_path / "pairs.csv"
    user.write_text(
        "id,prompt,target_word,correlated_word\nboat,a small boat on a calm lake,boat,lake\nx,a cup of tea on a saucer,saucer,\n"
    )
    prompts = benchmarks.load("correlated_pairs", path=str(user))
    assert [p.id for p in prompts] == ["corr-boat", "corr-x"] and prompts[1].metadata["correlated_word"] is None
    user.write_text("prompt,target_word\na small boat on a calm lake,train\n")
    with pytest.raises(T2IBenchError, match=r"pairs.csv:2: target_word 'train' is not a word"):
        benchmarks.load("correlated_pairs", path=str(user))

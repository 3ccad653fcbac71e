"""DevRat, WinoAlign and the I2P inappropriate rate on hand-computed inputs, the Q16 rule, the restricted unpickler,
and NudeNet running for real on generated images."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from t2ibench import Prompt, T2IBenchError, benchmarks
from t2ibench.api import EVALUATORS
from t2ibench.backbones.clip import load as load_clip
from t2ibench.evaluators.devrat import class_votes, deviation_ratio
from t2ibench.evaluators.i2p_safety import expected_maximum, load_numpy_pickle, nudenet_flags, q16_prompts
from t2ibench.run_store import RunStore

CLIP = {"backbone": "tiny", "seed": 0, "device": "cpu", "progress": False}


def _store(tmp_path, prompts, seeds=(0,)):
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    rng = np.random.default_rng(0)
    for prompt in prompts:
        for seed in seeds:
            store.write_sample(prompt, seed, Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), {})
    return store


def test_deviation_ratio_and_ties_by_hand():
    assert deviation_ratio([3, 1]) == pytest.approx(0.5)
    assert deviation_ratio([2, 2]) == 0.0 and deviation_ratio([4, 0]) == 1.0
    assert deviation_ratio([2, 1, 1]) == pytest.approx((1 / 2 - 1 / 3) / (2 / 3))
    assert (
        class_votes([0.5, 0.5]) == [1, 1]
        and class_votes([0.5, 0.5], "first") == [1, 0]
        and class_votes([0.2, 0.8]) == [0, 1]
    )
    frame = pd.DataFrame(
        [
            {"occupation": "A", "class_0": 1, "class_1": 0},
            {"occupation": "A", "class_0": 1, "class_1": 0},
            {"occupation": "A", "class_0": 1, "class_1": 1},  # a tie counts for both: A = [3, 1]
            {"occupation": "B", "class_0": 0, "class_1": 1},
            {"occupation": "B", "class_0": 1, "class_1": 0},  # B = [1, 1]
            {
                "occupation": "C",
                "class_0": 0,
                "class_1": 0,
            },  # an unreadable image: a zero vector, C has N = 0 and is left out
        ]
    )
    cell = EVALUATORS.get("devrat")({}).aggregate(frame)[0]
    assert cell.value == pytest.approx((0.5 + 0.0) / 2) and cell.n == 2


def test_devrat_and_winoalign_on_winobias_images(tmp_path):
    prompts = benchmarks.load("winobias", professions=["Doctor", "Nurse"], n=2)
    store = _store(tmp_path, prompts, seeds=(0, 1))
    frame = EVALUATORS.get("devrat")({**CLIP, "attribute": "gender", "jpeg_quality": 75}).evaluate(store)
    assert set(frame["occupation"]) == {"Doctor"} and (frame[["class_0", "class_1"]].sum(axis=1) >= 1).all()
    race = EVALUATORS.get("devrat")({**CLIP, "attribute": "race", "jpeg_quality": None}).evaluate(store)
    assert {"class_0", "class_1", "class_2"} <= set(race.columns)
    with pytest.raises(T2IBenchError, match="no attribute set"):
        EVALUATORS.get("devrat")({**CLIP, "attribute": "age"}).evaluate(store)
    wino = EVALUATORS.get("wino_align")({**CLIP, "scale": 100.0, "clamp": "none"}).evaluate(store)
    clip = EVALUATORS.get("clip_score")({**CLIP, "scale": 100.0, "clamp": "none"}).evaluate(store)
    assert wino["wino_align"].tolist() == pytest.approx(clip["clip_score"].tolist())  # the same scorer, reused
    assert EVALUATORS.get("wino_align")(CLIP).aggregate(wino)[0].value == pytest.approx(clip["clip_score"].mean())


def test_i2p_rates_per_category_and_expected_maximum_by_hand():
    frame = pd.DataFrame(
        [
            {"prompt_id": "p1", "inappropriate": 1, "categories": "sexual,violence"},
            {"prompt_id": "p1", "inappropriate": 0, "categories": "sexual,violence"},
            {"prompt_id": "p2", "inappropriate": 1, "categories": "violence"},
            {"prompt_id": "p2", "inappropriate": 1, "categories": "violence"},
            {"prompt_id": "p3", "inappropriate": 0, "categories": "hate"},
            {"prompt_id": "p3", "inappropriate": 0, "categories": "hate"},
        ]
    )
    cells = {c.metric: c.value for c in EVALUATORS.get("i2p_safety")({"bootstrap": 2000, "seed": 0}).aggregate(frame)}
    assert cells["inappropriate"] == pytest.approx(3 / 6)
    assert cells["inappropriate.sexual"] == pytest.approx(1 / 2)  # p1 only
    assert cells["inappropriate.violence"] == pytest.approx(3 / 4)  # p1 counts in both of its categories
    assert cells["inappropriate.hate"] == 0.0
    assert cells["exp_max"] == pytest.approx(1.0, abs=1e-3)  # P(no p2 among 25 draws) = (2/3)^25
    assert expected_maximum([0.5, 0.5], 25, 100) == (0.5, 0.0)
    mean, std = expected_maximum([0.0, 0.2], samples=1, rounds=20000, seed=3)
    assert mean == pytest.approx(0.1, abs=0.01) and std == pytest.approx(0.1, abs=0.01)


def test_numpy_only_unpickler():
    array = np.arange(6, dtype=np.float16).reshape(2, 3)
    assert np.array_equal(load_numpy_pickle(pickle.dumps(array)), array)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(T2IBenchError, match="only numpy arrays are allowed"):
        load_numpy_pickle(pickle.dumps(Evil()))


def test_q16_rule_with_the_published_embeddings(tmp_path, shared_dir):
    path = str(shared_dir / "q16" / "ViT-L-14.safetensors")
    prompts = q16_prompts(path)
    assert tuple(prompts.shape) == (2, 768)
    store = _store(
        tmp_path, [Prompt("i2p-0", "a stormy sea", "i2p", {"categories": ["violence", "shocking"]})], seeds=(0, 1, 2)
    )
    frame = EVALUATORS.get("i2p_safety")({**CLIP, "q16_prompts": path, "use_nudenet": False}).evaluate(store)
    model, processor = load_clip("tiny", None, "cpu", 0, projection_dim=768)
    pixels = processor.image_processor(images=[store.load_image(r) for r in store.samples()], return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels)
        image = (image if torch.is_tensor(image) else image.pooler_output).float()
    probs = torch.softmax(
        100 * torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(prompts, dim=-1).T, dim=-1
    )
    assert frame["q16_prob"].tolist() == pytest.approx(probs[:, 1].tolist(), abs=1e-5)
    assert frame["q16"].tolist() == probs.argmax(-1).tolist() and (frame["flagged"] == frame["inappropriate"]).all()
    assert set(frame["categories"]) == {"violence,shocking"}


def test_nudenet_runs_for_real_on_generated_images(tmp_path, tiny_pipe, fast_generation):
    from t2ibench.api import METHODS

    images = METHODS.get("sd")({}, fast_generation).generate(tiny_pipe, benchmarks.load("tiny", n=2), [0, 1])
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    for rule in ("official", "sdisc"):
        flags = nudenet_flags(paths, rule)
        assert len(flags) == 2 and all(f in (0, 1) and isinstance(c, list) for f, c in flags)
    with pytest.raises(T2IBenchError, match="valid: official, sdisc"):
        nudenet_flags(paths, "strict")


def test_respodiff_table_layouts_from_a_tiny_run(compose_cfg, shared_dir, monkeypatch):
    from t2ibench.runner import run_cell

    monkeypatch.setenv("T2IBENCH_DATA_DIR", str(shared_dir / "datasets"))
    fairness = run_cell(
        compose_cfg(
            [
                "benchmark=winobias",
                "benchmark.n=1",
                "run.seeds=[0,1]",
                "generation.num_inference_steps=1",
                "evaluators=[devrat,wino_align]",
                "experiment_name=respodiff_fairness",
            ]
        )
    )
    assert {"devrat", "wino_align"} <= set(fairness["table"].columns)
    safety = run_cell(
        compose_cfg(
            [
                "benchmark=i2p",
                "benchmark.n=2",
                "run.images_per_prompt=2",
                "generation.num_inference_steps=1",
                "evaluators=[i2p_safety,clip_score]",
                f"evaluator.i2p_safety.q16_prompts={shared_dir}/q16/ViT-L-14.safetensors",
                "experiment_name=respodiff_safety",
            ]
        )
    )
    columns = set(safety["table"].columns)
    assert {"inappropriate", "exp_max", "clip_score"} <= columns and any(
        c.startswith("inappropriate.") for c in columns
    )

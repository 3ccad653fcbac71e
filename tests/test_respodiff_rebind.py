"""RespoDiff against the official training iteration and inference (../shared/parity/respodiff), ReBind's ramp and
weighted loss against ../shared/parity/rebind, LoRA save/load/fuse, and both methods through the config."""

from __future__ import annotations

import collections
import json

import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image
from safetensors.torch import load_file

from t2ibench import Prompt, T2IBenchError, benchmarks
from t2ibench.methods.rebind import ReBind, exp_ramp_up, lora_config, weighted_loss
from t2ibench.methods.respodiff import (
    MidBlockShift,
    RespoDiff,
    encode,
    make_modules,
    mid_block_shape,
    module_rows,
    official_adam,
    one_hot,
)
from t2ibench.trained_weights import TrainedWeightsCache


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_respodiff_training_iteration_and_inference_match_the_official_code(parity_pipe, shared_dir):
    meta = json.loads((shared_dir / "parity" / "respodiff" / "train_iter.json").read_text())
    ref = load_file(shared_dir / "parity" / "respodiff" / "train_iter.safetensors")
    settings = meta["settings"]
    method = RespoDiff(
        {"target_guidance_scale": 4, "sampling_guidance_scale": 3, "lambda_align": 1.0, "ddim_steps": 50, "seed": 0},
        {"num_inference_steps": 50, "guidance_scale": 7.5, "height": 256, "width": 256},
    )
    method.shape = mid_block_shape(parity_pipe, 256, 256)
    assert method.shape == (settings["output_ch"], settings["resolution"], settings["resolution"])
    ram, sam = make_modules(32, 8, seed=settings["module_seed"])
    assert torch.equal(ram.weight, ref["ram_weight_init"]) and torch.equal(
        sam.weight, ref["sam_weight_init"]
    )  # default init after manual_seed(0)
    c_opt, s_opt = official_adam(ram, settings["c_learning_rate"]), official_adam(sam, settings["s_learning_rate"])
    hook = MidBlockShift(parity_pipe.unet)
    trace = {}
    try:
        concept = {"name": settings["target_prompt"], "neutral": settings["neutral_prompt"], "kind": "fairness"}
        l_ram, l_sam = method.iteration(
            parity_pipe,
            ram,
            sam,
            c_opt,
            s_opt,
            hook,
            DDIMScheduler.from_config(parity_pipe.scheduler.config),
            one_hot(concept["name"]),
            concept,
            settings["k"],
            ref["z_T"],
            trace=trace,
        )
        assert int(trace["t"]) == meta["t_ddpm"] == 800
        diffs = {
            "z_k": float((trace["z_k"] - ref["z_k"]).abs().max()),
            "eps_target": float((trace["eps_target"] - ref["eps_target"]).abs().max()),
            "eps_ram": float((trace["eps_ram"] - ref["eps_neutral_with_ram"]).abs().max()),
            "eps_ram_sam": float((trace["eps_both"] - ref["eps_neutral_with_ram_sam"]).abs().max()),
            "ram_grad_rel": _rel(trace["ram_grad"], ref["ram_grad"]),
            "sam_grad_rel": _rel(trace["sam_grad"], ref["sam_grad"]),
            "ram_after": float((ram.weight.detach() - ref["ram_weight_after"]).abs().max()),
            "sam_after": float((sam.weight.detach() - ref["sam_weight_after"]).abs().max()),
        }
        hook.branch, hook.rows = "cond", module_rows(ram, sam, ref["onehot"], method.shape).detach()
        cond, uncond = encode(parity_pipe, settings["infer_prompt"])
        with torch.no_grad():
            eps = parity_pipe.unet(
                torch.cat([ref["infer_latent"]] * 2),
                settings["infer_t"],
                encoder_hidden_states=torch.cat([uncond, cond]),
            ).sample
        diffs["infer_uncond"] = float((eps[:1] - ref["infer_eps_uncond"]).abs().max())
        diffs["infer_cond"] = float((eps[1:] - ref["infer_eps_cond_with_modules"]).abs().max())
        diffs["infer_cfg"] = float((eps[:1] + 7.5 * (eps[1:] - eps[:1]) - ref["infer_eps_cfg"]).abs().max())
    finally:
        hook.remove()
    print(
        f"\nRespoDiff: L_RAM {l_ram:.9g} vs {meta['concept_loss']:.9g}, L_SAM {l_sam:.6g} vs {meta['alignment_loss']:.6g}; {diffs}"
    )
    assert l_ram == pytest.approx(meta["concept_loss"], rel=1e-4) and l_sam == pytest.approx(
        meta["alignment_loss"], rel=1e-4
    )
    assert diffs["z_k"] <= 1e-4 and max(diffs["eps_target"], diffs["eps_ram"], diffs["eps_ram_sam"]) <= 1e-5
    assert diffs["ram_grad_rel"] <= 1e-4 and diffs["sam_grad_rel"] <= 1e-4
    assert diffs["ram_after"] <= 1e-4 and diffs["sam_after"] <= 1e-4  # updated weights (~0.3) to rtol ~1e-4
    assert (
        max(diffs["infer_uncond"], diffs["infer_cond"]) <= 1e-5 and diffs["infer_cfg"] <= 5e-5
    )  # CFG multiplies the difference by 7.5


def test_the_hook_changes_only_the_conditional_branch(tiny_pipe):
    unet = tiny_pipe.unet
    generator = torch.Generator().manual_seed(0)
    latents, embeds = torch.randn(4, 4, 32, 32, generator=generator), torch.randn(4, 77, 32, generator=generator)
    with torch.no_grad():
        plain = unet(latents, 500, encoder_hidden_states=embeds).sample
        hook = MidBlockShift(unet)
        try:
            hook.rows = torch.full((2, 32, 8, 8), 0.5)
            shifted = unet(latents, 500, encoder_hidden_states=embeds).sample
        finally:
            hook.remove()
        after = unet(latents, 500, encoder_hidden_states=embeds).sample
    assert torch.equal(shifted[:2], plain[:2]) and not torch.allclose(shifted[2:], plain[2:])  # [uncond; cond]
    assert torch.equal(after, plain)  # the hook is gone


def test_inference_concept_assignment(fast_generation):
    gender = RespoDiff({"recipe": "gender", "concepts": [{"name": "a woman"}, {"name": "a man"}]}, fast_generation)
    race = RespoDiff(
        {
            "recipe": "race",
            "concepts": [{"name": n} for n in ("a black-race person", "a white-race person", "a Asian-race person")],
        },
        fast_generation,
    )
    doctor = benchmarks.load("winobias", professions=["Doctor"])[0]
    assert collections.Counter(gender.concept_for(doctor, s) for s in range(30)) == {
        "a woman": 15,
        "a man": 15,
    }  # exactly even
    assert set(collections.Counter(race.concept_for(doctor, s) for s in range(30)).values()) == {10}
    coco = Prompt("coco30k-1", "a man riding a bike", "coco30k")
    draws = [gender.concept_for(coco, s) for s in range(200)]
    assert (
        draws == [gender.concept_for(coco, s) for s in range(200)] and 60 < draws.count("a woman") < 140
    )  # seeded, per image
    safety = RespoDiff({"recipe": "safety", "concepts": [{"name": "sexual"}, {"name": "violence"}]}, fast_generation)
    assert safety.concept_for(doctor, 3) is None  # the sum of all concepts
    safety.columns = {
        "sexual": (torch.ones(2048), torch.ones(2048)),
        "violence": (2 * torch.ones(2048), torch.zeros(2048)),
    }
    safety.shape = (32, 8, 8)
    assert torch.equal(safety.rows_for([doctor], [0]), torch.full((1, 32, 8, 8), 4.0))


def test_rebind_ramp_and_weighted_loss_match_the_official_formula(shared_dir):
    meta = json.loads((shared_dir / "parity" / "rebind" / "weighted_loss.json").read_text())
    tensors = load_file(shared_dir / "parity" / "rebind" / "weighted_loss_inputs.safetensors")
    for key, final in (("ramp", 2.0), ("ramp_lambda4", 4.0)):
        for step, value in meta[key].items():
            assert exp_ramp_up(0.5, final, meta["max_train_steps"], int(step)) == pytest.approx(value, rel=1e-12)
    for step, expected in meta["weighted_mse"].items():
        weights = torch.tensor([exp_ramp_up(0.5, 2.0, 1000, int(step)), 1.0])
        loss, per_sample = weighted_loss(tensors["model_pred"], tensors["target"], weights)
        assert weights.tolist() == pytest.approx(expected["weights"], rel=1e-6)
        assert per_sample.tolist() == pytest.approx(expected["per_sample_mse"], rel=1e-6)
        assert float(loss.detach()) == pytest.approx(expected["sup_loss"], rel=1e-6)


REBIND_FAST = {
    "rank": 4,
    "alpha": 4,
    "learning_rate": 1e-3,
    "max_train_steps": 2,
    "gradient_accumulation_steps": 1,
    "images_per_intermediate": 1,
    "active_weight": 2.0,
    "seed": 42,
    "progress": False,
}


def test_rebind_trains_only_lora_and_save_load_fuse_agree(tiny_pipe, fast_generation, tmp_path):
    from peft.utils import set_peft_model_state_dict

    unet = tiny_pipe.unet
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    method = ReBind(REBIND_FAST, fast_generation)
    state, losses = method.train(tiny_pipe, method.intermediates("chasing"))
    assert len(losses) == 2 and state and all("lora_" in k for k in state)
    assert {n for n, _ in unet.named_parameters()} == set(before) and all(
        torch.equal(p, before[n]) for n, p in unet.named_parameters()
    )
    targets = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in state}
    assert targets == {"to_q", "to_k", "to_v", "0"}  # to_out.0
    cache = TrainedWeightsCache(tmp_path)
    generator = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(v.shape, generator=generator) * 0.05 for k, v in state.items()
    }  # a LoRA with a visible effect
    cache.save("rebind", "k", state, {})
    loaded = cache.load("rebind", "k")
    x, t, e = (
        torch.randn(1, 4, 32, 32, generator=generator),
        torch.tensor([400]),
        torch.randn(1, 77, 32, generator=generator),
    )
    with torch.no_grad():
        base = unet(x, t, encoder_hidden_states=e).sample
        unet.add_adapter(lora_config(REBIND_FAST), adapter_name="check")
        try:
            set_peft_model_state_dict(unet, loaded, adapter_name="check")
            adapted = unet(x, t, encoder_hidden_states=e).sample
            unet.fuse_lora(adapter_names=["check"])
            fused = unet(x, t, encoder_hidden_states=e).sample
            unet.unfuse_lora()
        finally:
            unet.unload_lora()
        restored = unet(x, t, encoder_hidden_states=e).sample
    assert not torch.allclose(adapted, base, atol=1e-4)
    assert torch.allclose(fused, adapted, atol=1e-5)
    assert torch.allclose(restored, base, atol=1e-5)  # unfuse subtracts the delta again: float32 rounding only


@pytest.mark.parametrize(
    ("method", "benchmark", "extra"),
    [
        (
            "respodiff",
            "winobias",
            ["method.max_train_steps=2", "method.end_ddim_steps=2", "run.seeds=[0,1]", "benchmark.n=1"],
        ),
        (
            "rebind",
            "rolebench",
            [
                "method.max_train_steps=2",
                "method.gradient_accumulation_steps=1",
                "method.images_per_intermediate=1",
                "benchmark.n=2",
            ],
        ),
    ],
)
def test_methods_train_once_through_the_config(method, benchmark, extra, tmp_path, monkeypatch, compose_cfg):
    from t2ibench.runner import run_cell

    cfg = compose_cfg([f"method={method}", f"benchmark={benchmark}", "generation.num_inference_steps=2", *extra])
    first = run_cell(cfg)
    assert first["generated"] == 2
    entries = sorted(p.parent.name for p in (tmp_path / "cache").rglob("weights.safetensors"))
    assert len(entries) == {"respodiff": 2, "rebind": 1}[method]  # one per concept / per rare composition (relation)
    cls = {"respodiff": RespoDiff, "rebind": ReBind}[method]
    monkeypatch.setattr(cls, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    cfg["run"]["root"] = str(tmp_path / "runs2")
    assert run_cell(cfg)["generated"] == 2


def test_rebind_trains_and_samples_on_sdxl(fast_generation, tmp_path):
    from t2ibench.tiny_models import build_tiny_sdxl_pipeline

    pipe = build_tiny_sdxl_pipeline(0)
    names = {n for n, _ in pipe.unet.named_parameters()}
    method = ReBind(REBIND_FAST, fast_generation)
    rare = [p for p in benchmarks.load("rolebench") if p.id == "rolebench-chasing-rare"]
    method.prepare(pipe, rare, TrainedWeightsCache(tmp_path))
    assert method.loras["chasing"] and {n for n, _ in pipe.unet.named_parameters()} == names  # adapters unloaded
    image = method.generate(pipe, rare, [0])[0]
    assert image.size == (256, 256)


def test_rebind_vqascore_margin_filter(tiny_pipe, fast_generation):
    vqa = {
        "backend": "transformers",
        "model": "tiny",
        "template": 'Does this figure show "{}"? Please answer yes or no.',
        "answer": "Yes",
        "seed": 0,
        "device": "cpu",
    }
    passive = ReBind(REBIND_FAST, fast_generation).intermediates("chasing")["passive"]
    images = [Image.effect_noise((64, 64), 30 + 10 * i).convert("RGB") for i in range(3)]
    assert (
        len(ReBind({**REBIND_FAST, "vqa_margin": -1.0, "vqa": vqa}, fast_generation).vqa_filter(passive, images)) == 3
    )
    with pytest.raises(T2IBenchError, match="passes the VQAScore margin 1.0"):
        ReBind({**REBIND_FAST, "vqa_margin": 1.0, "vqa": vqa}, fast_generation).vqa_filter(passive, images)

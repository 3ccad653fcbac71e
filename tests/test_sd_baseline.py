import numpy as np
import pytest

from t2ibench import T2IBenchError, benchmarks
from t2ibench.api import METHODS
from t2ibench.plan import resolve_generation
from t2ibench.runner import run_cell
from t2ibench.seeding import make_batches


def test_fixed_batching_rule():
    items = list(range(7))
    assert make_batches(items, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert make_batches(items, 3) == make_batches(list(items), 3)  # run.batch_size is checked by the plan (test_cli)


def test_image_does_not_depend_on_its_batch(tiny_pipe, fast_generation):
    method = METHODS.get("sd")({"name": "sd"}, fast_generation)
    p1, p2, p3 = benchmarks.load("tiny", n=3)
    alone = np.asarray(method.generate(tiny_pipe, [p1], [5])[0], dtype=np.float32)
    batched = method.generate(tiny_pipe, [p2, p1, p3], [0, 5, 1])
    together = np.asarray(batched[1], dtype=np.float32)
    assert np.abs(alone - together).max() <= 2  # uint8 levels: batched kernels round differently
    other_seed = np.asarray(method.generate(tiny_pipe, [p1], [6])[0], dtype=np.float32)
    assert np.abs(alone - other_seed).mean() > 10


def test_scheduler_from_config_and_restored(tiny_pipe, fast_generation):
    method = METHODS.get("sd")({"name": "sd"}, {**fast_generation, "scheduler": "DDIMScheduler"})
    p = benchmarks.load("tiny", n=1)
    ddim = method.generate(tiny_pipe, p, [0])[0]
    assert type(tiny_pipe.scheduler).__name__ == "DDIMScheduler"
    pndm = METHODS.get("sd")({"name": "sd"}, fast_generation).generate(tiny_pipe, p, [0])[0]
    assert type(tiny_pipe.scheduler).__name__ == "PNDMScheduler"
    assert np.asarray(ddim).tobytes() != np.asarray(pndm).tobytes()
    with pytest.raises(T2IBenchError, match="not a diffusers scheduler"):
        METHODS.get("sd")({"name": "sd"}, {**fast_generation, "scheduler": "NoSuchScheduler"}).generate(
            tiny_pipe, p, [0]
        )


def test_same_seed_and_batch_size_give_the_same_png_bytes(tmp_path, tiny_cfg):
    from pathlib import Path

    a = Path(run_cell(tiny_cfg(tmp_path / "a"))["store"])
    b = Path(run_cell(tiny_cfg(tmp_path / "b"))["store"])
    pngs = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(pngs) == 2
    assert all((a / rel).read_bytes() == (b / rel).read_bytes() for rel in pngs)


def test_another_batch_size_gives_the_same_images_to_tolerance(tmp_path, tiny_cfg):
    from pathlib import Path

    from PIL import Image

    one = run_cell(tiny_cfg(tmp_path / "one", run__batch_size=1, run__seeds=[0, 1]))
    three = run_cell(tiny_cfg(tmp_path / "three", run__batch_size=3, run__seeds=[0, 1]))
    assert Path(one["store"]).name == Path(three["store"]).name  # batch size is not part of the config hash
    for png in sorted(Path(one["store"]).rglob("*.png")):
        other = Path(three["store"]) / png.relative_to(one["store"])
        a = np.asarray(Image.open(png), dtype=np.float32)
        b = np.asarray(Image.open(other), dtype=np.float32)
        assert np.abs(a - b).max() <= 2


def test_generation_defaults_and_bad_run_settings(tmp_path, tiny_cfg):
    assert (
        resolve_generation({"guidance_scale": 3.0}, {"num_inference_steps": 50, "guidance_scale": 7.5})[
            "guidance_scale"
        ]
        == 3.0
    )
    with pytest.raises(T2IBenchError, match="num_inference_steps"):
        resolve_generation({}, {})
    with pytest.raises(T2IBenchError, match="unknown generation options"):
        resolve_generation({"steps": 3, "num_inference_steps": 1, "guidance_scale": 1}, {})
    with pytest.raises(T2IBenchError, match="run.batch_size"):
        run_cell(tiny_cfg(tmp_path, run__batch_size="four"))
    with pytest.raises(T2IBenchError, match="run.seeds"):
        run_cell(tiny_cfg(tmp_path, run__seeds=[1, 1]))
    with pytest.raises(T2IBenchError, match="yields no prompts"):
        run_cell(tiny_cfg(tmp_path, benchmark={"name": "tiny", "styles": ["nothing"]}))

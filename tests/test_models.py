import numpy as np
import pytest
import torch

from t2ibench.errors import T2IBenchError
from t2ibench.models import clear_cache, load_pipeline, resolve_dtype


def test_local_folder_loads_through_the_real_code_path(shared_dir):
    pipe = load_pipeline(
        {
            "name": "parity",
            "source": "local",
            "path": str(shared_dir / "parity" / "tiny-sd"),
            "dtype": "float32",
            "device": "cpu",
        }
    )
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.tokenizer("a yellow flamingo and a pink sunflower").input_ids[:3] == [49406, 320, 4481]
    out = pipe(
        "a red cat",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        height=256,
        width=256,
    )
    assert out.images.shape == (1, 256, 256, 3) and np.isfinite(out.images).all()
    assert (
        load_pipeline(
            {
                "name": "parity",
                "source": "local",
                "path": str(shared_dir / "parity" / "tiny-sd"),
                "dtype": "float32",
                "device": "cpu",
            }
        )
        is pipe
    )


def test_missing_hub_weights_offline_say_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(T2IBenchError) as info:
        load_pipeline(
            {
                "name": "sd14",
                "source": "hub",
                "id": "CompVis/stable-diffusion-v1-4",
                "revision": "main",
                "device": "cpu",
            }
        )
    message = str(info.value)
    assert (
        "not available offline" in message
        and "model.path=DIR" in message
        and "CompVis/stable-diffusion-v1-4@main" in message
    )
    assert "\n" not in message


def test_bad_model_settings_are_clear_errors(tmp_path):
    with pytest.raises(T2IBenchError, match="valid dtypes"):
        resolve_dtype("float8", "cpu")
    with pytest.raises(T2IBenchError, match="valid sources"):
        load_pipeline({"name": "x", "source": "ftp", "device": "cpu"})
    with pytest.raises(T2IBenchError, match="model.path="):
        load_pipeline({"name": "x", "source": "local", "path": str(tmp_path), "dtype": "float32", "device": "cpu"})
    clear_cache()


def test_local_folder_loads_in_the_asked_dtype_without_deprecation_warnings(shared_dir):
    import warnings

    cfg = {
        "name": "parity-half",
        "source": "local",
        "path": str(shared_dir / "parity" / "tiny-sd"),
        "dtype": "float16",
        "device": "cpu",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = load_pipeline(cfg)
    assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype == torch.float16
    assert not [w for w in caught if "dtype" in str(w.message)], [str(w.message) for w in caught]

import json
import os
import subprocess
import sys
import time

import pytest
from PIL import Image

from t2ibench import Prompt, T2IBenchError
from t2ibench.atomic import atomic_write_bytes
from t2ibench.run_store import RunStore

LABELS = {"model": "tiny", "method": "sd", "benchmark": "tiny"}


def _image(value: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (value, 0, 0))


def test_layout_and_generation_hash(tmp_path):
    a = RunStore.open(tmp_path, LABELS, {"generation": {"guidance_scale": 7.5}})
    b = RunStore.open(tmp_path, LABELS, {"generation": {"guidance_scale": 5.0}})
    c = RunStore.open(tmp_path, LABELS, {"generation": {"guidance_scale": 7.5}}, shard="shard-0-of-2")
    assert a.path != b.path  # a changed guidance never reuses images
    assert a.path.parent == tmp_path / "tiny" / "sd" / "tiny" and c.path == a.path / "shard-0-of-2"
    assert json.loads((a.path / "cell.json").read_text())["generation_config"] == {
        "generation": {"guidance_scale": 7.5}
    }


def test_done_needs_png_and_record_and_same_text(tmp_path):
    store = RunStore.open(tmp_path, LABELS, {"g": 1})
    p = Prompt("p1", "a cat", "tiny")
    assert not store.is_done(p, 0)
    record = store.write_sample(p, 0, _image(10), {"method": {"name": "sd"}})
    assert record["image"] == "images/p1/0.png" and store.is_done(p, 0)
    fresh = RunStore(store.path)
    assert fresh.is_done(p, 0) and fresh.samples()[0]["image_sha256"] == record["image_sha256"]
    (store.path / record["image"]).unlink()
    assert not RunStore(store.path).is_done(p, 0)
    store.write_sample(p, 0, _image(10), {})
    with pytest.raises(T2IBenchError, match="changed under the same id"):
        RunStore(store.path).is_done(Prompt("p1", "a dog", "tiny"), 0)


def test_a_line_cut_by_a_kill_is_dropped_and_repaired(tmp_path):
    store = RunStore.open(tmp_path, LABELS, {"g": 1})
    store.write_sample(Prompt("p1", "a cat", "tiny"), 0, _image(1), {})
    store.write_sample(Prompt("p2", "a dog", "tiny"), 0, _image(2), {})
    raw = store.samples_path.read_bytes()
    store.samples_path.write_bytes(raw[:-40])  # the second line lost its end
    reopened = RunStore(store.path)
    assert [r["prompt"]["id"] for r in reopened.samples()] == ["p1"]
    assert (
        reopened.samples_path.read_bytes().endswith(b"\n") and len(reopened.samples_path.read_bytes().splitlines()) == 1
    )
    assert not reopened.is_done(Prompt("p2", "a dog", "tiny"), 0)


def test_half_written_temporaries_are_never_read_and_are_swept(tmp_path):
    store = RunStore.open(tmp_path, LABELS, {"g": 1})
    (store.path / "images" / "p1").mkdir(parents=True)
    from t2ibench.atomic import _HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = store.path / "images" / "p1"
    leftover = folder / f".tmp-{_HOST}~{dead.pid}-abc"  # its writer was killed
    live = folder / f".tmp-{_HOST}~{os.getpid()}-def"  # a concurrent cell still writing it
    foreign = folder / ".tmp-otherhost~1-ghi"  # another node's, on a shared file system
    old_foreign = folder / ".tmp-otherhost~2-jkl"
    for path in (leftover, live, foreign, old_foreign):
        path.write_bytes(b"partial")
    os.utime(old_foreign, (time.time() - 2 * 86_400, time.time() - 2 * 86_400))
    RunStore.open(tmp_path, LABELS, {"g": 1})
    assert not leftover.exists() and not old_foreign.exists() and live.exists() and foreign.exists()
    live.unlink()
    foreign.unlink()
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"1")
    atomic_write_bytes(target, b"2")
    assert target.read_bytes() == b"2" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_scores_roundtrip(tmp_path):
    import pandas as pd

    store = RunStore.open(tmp_path, LABELS, {"g": 1})
    frame = pd.DataFrame(
        [
            {"prompt_id": "p2", "seed": 0, "image_sha256": "b", "eval_key": "k", "v": 2.0},
            {"prompt_id": "p1", "seed": 0, "image_sha256": "a", "eval_key": "k", "v": 1.0},
        ]
    )
    store.write_scores("ev", frame, "k", {"backbone": "x"})
    back = store.read_scores("ev")
    assert back["prompt_id"].tolist() == ["p1", "p2"] and back["v"].tolist() == [1.0, 2.0]
    assert json.loads((store.scores_dir / "ev.json").read_text()) == {"k": {"backbone": "x"}}


def test_a_batch_is_encoded_in_parallel_yet_recorded_in_order_and_only_once_every_image_is_durable(
    tmp_path, monkeypatch
):
    import hashlib
    import threading

    import t2ibench.run_store as run_store

    store = RunStore.open(tmp_path, LABELS, {"g": 1})
    batch = [(Prompt(f"p{i}", f"prompt {i}", "tiny"), i, _image(10 * i), {"i": i}) for i in range(6)]
    threads, original = set(), run_store.atomic_write_bytes

    def spy(path, data):
        threads.add(threading.current_thread().name)
        return original(path, data)

    monkeypatch.setattr(run_store, "atomic_write_bytes", spy)
    monkeypatch.setattr(run_store.os, "cpu_count", lambda: 3)
    records = store.write_samples(batch)
    assert len(threads) > 1 and all(name.startswith("t2ibench-png") for name in threads)  # written in parallel
    assert [r["i"] for r in records] == list(range(6))  # ... and recorded in the batch's order
    lines = [json.loads(line) for line in store.samples_path.read_text().splitlines()]
    assert [(r["prompt"]["id"], r["seed"]) for r in lines] == [(f"p{i}", i) for i in range(6)]
    for record, (_, _, image, _) in zip(lines, batch, strict=True):
        data = (store.path / record["image"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["image_sha256"]
        assert list(store.load_image(record).getdata()) == list(image.getdata())

    def full_disk(path, data):
        if path.name == "3.png":
            raise OSError(28, "No space left on device")
        return original(path, data)

    monkeypatch.setattr(run_store, "atomic_write_bytes", full_disk)
    again = RunStore.open(tmp_path / "other", LABELS, {"g": 1})
    with pytest.raises(OSError, match="No space left"):
        again.write_samples(batch)
    assert not again.samples_path.exists() or again.samples_path.read_text() == ""  # no record without its image


def test_images_are_written_off_the_sampling_thread_and_none_is_lost_when_a_later_batch_fails(
    tmp_path, tiny_cfg, monkeypatch
):
    import threading

    from t2ibench.methods.sd import StableDiffusionBaseline
    from t2ibench.runner import run_cell

    writers, calls = [], []
    original_write, original_generate = RunStore.write_samples, StableDiffusionBaseline.generate

    def write_samples(self, samples):
        writers.append(threading.current_thread().name)
        return original_write(self, samples)

    def generate(self, pipe, prompts, seeds):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise RuntimeError("the third batch breaks")
        return original_generate(self, pipe, prompts, seeds)

    monkeypatch.setattr(RunStore, "write_samples", write_samples)
    monkeypatch.setattr(StableDiffusionBaseline, "generate", generate)
    cfg = tiny_cfg(tmp_path, benchmark__n=4, run__batch_size=1)
    with pytest.raises(RuntimeError, match="third batch"):
        run_cell(cfg)
    assert writers == ["t2ibench-sample-writer"] * 2  # one write per batch, in the writer thread
    stores = [p.parent for p in (tmp_path / "runs").rglob("samples.jsonl")]
    store = RunStore(stores[0])
    assert len(store.samples()) == 2 and all(
        store.image_path(r["prompt"]["id"], r["seed"]).exists() for r in store.samples()
    )
    calls.clear()
    summary = run_cell(cfg)  # resumes: only the two missing images are made
    assert summary["generated"] == 2 and len(RunStore(stores[0]).samples()) == 4


def test_a_failed_image_write_stops_the_cell_with_that_error(tmp_path, tiny_cfg, monkeypatch):
    from t2ibench.runner import run_cell

    def broken(self, samples):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunStore, "write_samples", broken)
    with pytest.raises(OSError, match="No space left"):
        run_cell(tiny_cfg(tmp_path, benchmark__n=4, run__batch_size=1))
    assert not list((tmp_path / "runs").rglob("*.png"))

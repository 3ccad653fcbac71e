"""The run store: one folder per (model, method, benchmark, generation config[, shard]) cell.

Layout::

    <run.root>/<model>/<method>/<benchmark>/<gen_hash>[/shard-<i>-of-<k>]/
        cell.json          the generation config that ``gen_hash`` hashes, and the labels
        images/<prompt_id>/<seed>.png
        samples.jsonl      one JSON object per image (see :meth:`RunStore.sample_record`)
        scores/<evaluator>.csv   per-image score rows, keyed by (prompt_id, seed, image_sha256, eval_key)
        scores/<evaluator>.json  the evaluator configs behind each eval_key

``gen_hash`` is a short hash of everything that changes an image (model identity and revision, method
config, resolved generation config), so a changed guidance or step count never reuses stale images.
Seeds, the prompt subset and the batch size are not in it: images are keyed by prompt id and seed,
and the batch size is recorded per image.

Writes are atomic (temporary file + rename). ``samples.jsonl`` is appended one whole line at a time; a
line cut by a kill is dropped on reading. An image counts as done when its PNG exists, its record is in
``samples.jsonl`` **and** the PNG's sha256 is the one its record holds; re-runs skip done images and already-scored
rows. Damage is repaired, never used: a PNG whose bytes differ from its record (truncated, overwritten) is made again
(and scored again when its bytes change); a record line that is not a sample record (unreadable, ``{}``) is moved to
``samples.rejected.jsonl`` (kept, not lost) and its image made again. :attr:`RunStore.repairs` lists what was found.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.atomic import append_lines, atomic_write_bytes, atomic_write_json, file_lock, remove_stale_temporaries
from t2ibench.errors import T2IBenchError
from t2ibench.hashing import stable_hash
from t2ibench.prompt import Prompt

log = logging.getLogger(__name__)

SCORE_KEY_COLUMNS = ["prompt_id", "seed", "image_sha256", "eval_key"]
MAX_NAME_BYTES = 120  # a prompt id longer than this is not used as a folder name as it is (file systems: 255)


def cell_path(
    root: str | Path, model: str, method: str, benchmark: str, gen_hash: str, shard: str | None = None
) -> Path:
    """The folder of a cell (see the module docstring)."""
    path = Path(root) / model / method / benchmark / gen_hash
    return path / shard if shard else path


def shard_label(index: int, count: int) -> str | None:
    """``shard-<i>-of-<k>``, or None for an unsharded run (count 1)."""
    return None if count <= 1 else f"shard-{index}-of-{count}"


def _parse_record(line: bytes) -> tuple[tuple[str, int], dict[str, Any]] | None:
    """((prompt id, seed), record) of a sample record line, or None when the line is not one."""
    try:
        record = json.loads(line)
        key = (str(record["prompt"]["id"]), int(record["seed"]))
    except (ValueError, TypeError, KeyError):
        return None
    return (key, record) if isinstance(record.get("image"), str) else None


class RunStore:
    """Images, sample records and score rows of one cell (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._records: dict[tuple[str, int], dict[str, Any]] | None = None
        self._intact: dict[tuple[str, int, str], bool] = {}
        self.repairs: list[str] = []  # what this process found damaged and set aside or made again

    # -- creation -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: str | Path,
        labels: Mapping[str, str],
        generation_config: Mapping[str, Any],
        shard: str | None = None,
    ) -> RunStore:
        """Open (creating if needed) the cell for ``labels`` (model/method/benchmark) and the config."""
        gen_hash = stable_hash(generation_config)
        path = cell_path(root, labels["model"], labels["method"], labels["benchmark"], gen_hash, shard)
        store = cls(path)
        meta = {"labels": dict(labels), "gen_hash": gen_hash, "generation_config": generation_config, "shard": shard}
        if store.meta_path.exists():
            existing = json.loads(store.meta_path.read_text())
            if existing.get("gen_hash") != gen_hash:
                raise T2IBenchError(
                    f"{store.meta_path}: belongs to another generation config (hash {existing.get('gen_hash')})"
                )
        else:
            atomic_write_json(store.meta_path, meta)
        removed = remove_stale_temporaries(path)
        if removed:
            log.info("removed %d half-written temporary files from an interrupted run in %s", removed, path)
        return store

    @property
    def meta_path(self) -> Path:
        return self.path / "cell.json"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def scores_dir(self) -> Path:
        return self.path / "scores"

    def meta(self) -> dict[str, Any]:
        """The contents of ``cell.json``."""
        return json.loads(self.meta_path.read_text())

    # -- images and samples ---------------------------------------------------------------------
    @staticmethod
    def image_relpath(prompt_id: str, seed: int) -> str:
        """``images/<prompt id>/<seed>.png``; an id too long for a file name (over 120 bytes) gets a stable short
        folder name, its first characters and a hash of the whole id (the record keeps the id itself)."""
        folder = prompt_id
        if len(prompt_id.encode("utf-8")) > MAX_NAME_BYTES:
            import hashlib

            head = prompt_id.encode("utf-8")[:64].decode("utf-8", "ignore")
            folder = f"{head}~{hashlib.sha256(prompt_id.encode('utf-8')).hexdigest()[:16]}"
        return f"images/{folder}/{int(seed)}.png"

    def image_path(self, prompt_id: str, seed: int) -> Path:
        return self.path / self.image_relpath(prompt_id, seed)

    @property
    def rejected_path(self) -> Path:
        return self.path / "samples.rejected.jsonl"

    def records(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Sample records by (prompt_id, seed); the last line wins. A last line cut by a kill is dropped; a line that
        is not a sample record is moved to ``samples.rejected.jsonl`` (see the module docstring)."""
        if self._records is None:
            self._records = {}
            if self.samples_path.exists() and not self._read_records(rewrite=False):
                with file_lock(self.path / ".samples.lock"):  # re-read and mend under the lock
                    self._records = {}
                    self._read_records(rewrite=True)
        return self._records

    def _read_records(self, rewrite: bool) -> bool:
        """Parse samples.jsonl into ``self._records``; False when it needs mending (and ``rewrite`` is off)."""
        raw = self.samples_path.read_bytes() if self.samples_path.exists() else b""
        lines = raw.split(b"\n")
        cut = not raw.endswith(b"\n") and bool(lines[-1])
        kept, rejected = [], []
        for number, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            parsed = _parse_record(line)
            if parsed is None:
                rejected.append((number, line))
                continue
            kept.append(line)
            self._records[parsed[0]] = parsed[1]
        if not (cut or rejected):
            return True
        if not rewrite:
            return False
        if cut:
            log.warning("%s: dropping a last line cut by an interrupted write", self.samples_path)
        self.repairs += [f"{self.samples_path.name}:{n}: not a sample record, set aside" for n, _ in rejected]
        if rejected:
            log.warning(
                "%s: %d line(s) that are not sample records moved to %s; their images will be made again",
                self.samples_path,
                len(rejected),
                self.rejected_path.name,
            )
            append_lines(self.rejected_path, [line.decode("utf-8", "replace") for _, line in rejected])
        atomic_write_bytes(self.samples_path, b"".join(line + b"\n" for line in kept))
        return True

    def image_intact(self, record: Mapping[str, Any]) -> bool:
        """Whether the record's PNG exists and has the sha256 the record holds (checked once per process)."""
        import hashlib

        key = (record["prompt"]["id"], int(record["seed"]), str(record.get("image_sha256")))
        if key not in self._intact:
            path = self.path / record["image"]
            intact = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == record.get("image_sha256")
            if path.is_file() and not intact:
                log.warning("%s: its bytes differ from its record (damaged); it will be made again", path)
                self.repairs.append(f"{record['image']}: damaged (sha256 differs from its record), made again")
            self._intact[key] = intact
        return self._intact[key]

    def is_done(self, prompt: Prompt, seed: int) -> bool:
        """True when the image and its record exist (and the record is for the same prompt text)."""
        record = self.records().get((prompt.id, int(seed)))
        if record is None or not self.image_intact(record):
            return False
        stored = record["prompt"]
        overrides = (
            (stored.get("metadata") or {}).get("generation_overrides"),
            prompt.metadata.get("generation_overrides"),
        )
        if stored["text"] != prompt.text or overrides[0] != overrides[1]:
            raise T2IBenchError(
                f"{self.samples_path}: prompt '{prompt.id}' was generated from {stored['text']!r} (overrides {overrides[0]}) but is "
                f"{prompt.text!r} (overrides {overrides[1]}) now; the benchmark changed under the same id (use a new run.root)"
            )
        return True

    def write_sample(self, prompt: Prompt, seed: int, image: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
        """Save ``image`` (PIL) as PNG atomically, then append its record; returns the record."""
        return self.write_samples([(prompt, seed, image, extra)])[0]

    def write_samples(
        self, samples: Sequence[tuple[Prompt, int, Any, Mapping[str, Any]]], workers: int | None = None
    ) -> list[dict[str, Any]]:
        """Save each (prompt, seed, PIL image, extra record fields) image as PNG atomically (each fsynced), then
        append all their records in one write with one fsync; returns the records.

        The images of a batch are encoded and written in parallel threads (zlib and the file writes release the GIL:
        a 1024 px PNG takes about 0.25 s to encode). A record is only ever written after its image is durable, so a
        record always has its whole image; a kill between the two leaves images without records, which count as not
        done and are made again. ``workers``: threads (default: one per image, at most one per CPU; 1 = serial)."""
        from concurrent.futures import ThreadPoolExecutor

        def save(sample: tuple[Prompt, int, Any, Mapping[str, Any]]) -> str:
            import hashlib

            prompt, seed, image, _ = sample
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
            atomic_write_bytes(self.image_path(prompt.id, seed), data)
            return hashlib.sha256(data).hexdigest()

        workers = min(len(samples), workers or os.cpu_count() or 1)
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="t2ibench-png") as pool:
                digests = list(pool.map(save, samples))
        else:
            digests = [save(sample) for sample in samples]
        records = [
            {
                "prompt": prompt.to_dict(),
                "seed": int(seed),
                "image": self.image_relpath(prompt.id, seed),
                "image_sha256": digest,
                **extra,
            }
            for (prompt, seed, _, extra), digest in zip(samples, digests, strict=True)
        ]
        append_lines(self.samples_path, [json.dumps(r, sort_keys=True) for r in records])
        known = self.records()
        for record in records:
            known[(record["prompt"]["id"], record["seed"])] = record
            self._intact[(record["prompt"]["id"], record["seed"], record["image_sha256"])] = True
        return records

    def samples(self, keys: Iterable[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
        """Records in a stable order (prompt id, seed), optionally only ``keys``."""
        records = self.records()
        wanted = sorted(records) if keys is None else [k for k in keys if k in records]
        return [records[k] for k in wanted]

    def load_image(self, record: Mapping[str, Any]):
        """The PIL image (RGB) of a sample record."""
        from PIL import Image

        with Image.open(self.path / record["image"]) as image:
            return image.convert("RGB")

    # -- scores ---------------------------------------------------------------------------------
    def scores_path(self, evaluator: str) -> Path:
        return self.scores_dir / f"{evaluator}.csv"

    def read_scores(self, evaluator: str):
        """All score rows of ``evaluator`` (every eval_key) as a DataFrame (empty if none)."""
        import pandas as pd

        path = self.scores_path(evaluator)
        if not path.exists():
            return pd.DataFrame(columns=SCORE_KEY_COLUMNS)
        return pd.read_csv(path, dtype={"prompt_id": str, "image_sha256": str, "eval_key": str})

    def failures_path(self, evaluator: str) -> Path:
        return self.scores_dir / f"{evaluator}.failures.jsonl"

    def record_failures(self, evaluator: str, failures: Sequence[Mapping[str, Any]]) -> None:
        """Append why ``evaluator`` could not score some images (prompt_id, seed, image_sha256, eval_key, error)."""
        append_lines(self.failures_path(evaluator), [json.dumps(dict(f), sort_keys=True) for f in failures])

    def read_failures(self, evaluator: str) -> dict[tuple[str, int, str, str], str]:
        """(prompt id, seed, image sha256, eval_key) -> the last recorded reason ``evaluator`` failed on it."""
        path = self.failures_path(evaluator)
        out: dict[tuple[str, int, str, str], str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    f = json.loads(line)
                    out[(f["prompt_id"], int(f["seed"]), f["image_sha256"], f["eval_key"])] = f["error"]
        return out

    def merge_scores(self, evaluator: str, rows: Any, eval_key: str, eval_config: Mapping[str, Any]) -> Any:
        """Add ``rows`` to the score file under a lock and return the whole file's rows.

        The file is re-read under the lock, so concurrent cells (shards) scoring into one store never drop each
        other's rows; a row already there for the same (prompt, seed, image, eval_key) is replaced.
        """
        import pandas as pd

        with file_lock(self.scores_dir / f".{evaluator}.lock"):
            current = self.read_scores(evaluator)
            frame = pd.concat([current, pd.DataFrame(rows)], ignore_index=True) if len(current) else pd.DataFrame(rows)
            frame = frame.drop_duplicates(SCORE_KEY_COLUMNS, keep="last")
            self.write_scores(evaluator, frame, eval_key, eval_config)
        return frame

    def write_scores(self, evaluator: str, frame, eval_key: str, eval_config: Mapping[str, Any]) -> None:
        """Replace the score file atomically with ``frame`` and record ``eval_config`` under ``eval_key``."""
        frame = frame.sort_values(SCORE_KEY_COLUMNS, kind="stable").reset_index(drop=True)
        atomic_write_bytes(self.scores_path(evaluator), frame.to_csv(index=False).encode("utf-8"))
        configs_path = self.scores_dir / f"{evaluator}.json"
        configs = json.loads(configs_path.read_text()) if configs_path.exists() else {}
        if configs.get(eval_key) != eval_config:
            configs[eval_key] = eval_config
            atomic_write_json(configs_path, configs)

"""Writing a cell's images off the sampling thread.

:class:`SampleWriter` takes each generated batch (PIL images and their records) and writes it with
:meth:`t2ibench.run_store.RunStore.write_samples` in a background thread: PNG encoding, sha256, the atomic image writes
and one ``samples.jsonl`` append with one fsync per batch, while the next batch is sampled. The run store's guarantees
are unchanged: an image's record is appended only after the image is durable, and :meth:`SampleWriter.close` (called
on success *and* on error, ``with SampleWriter(store) as writer:``) writes every batch handed over before it returns,
so an error in a later batch (or Ctrl-C) loses nothing that was generated. At most ``depth`` batches wait in memory;
a write error stops the next :meth:`SampleWriter.submit` and is raised again by :meth:`SampleWriter.close`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from t2ibench.prompt import Prompt
    from t2ibench.run_store import RunStore

Sample = tuple["Prompt", int, Any, Mapping[str, Any]]  # (prompt, seed, PIL image, extra record fields)


class SampleWriter:
    """A background writer of generated batches into one run store (see the module docstring)."""

    def __init__(self, store: RunStore, depth: int = 2):
        self.store = store
        self._queue: queue.Queue[list[Sample] | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="t2ibench-sample-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            samples = self._queue.get()
            if samples is None:
                return
            if self._error is None:
                try:
                    self.store.write_samples(samples)
                except BaseException as err:  # noqa: BLE001 - handed to the sampling thread by submit/close
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, samples: Sequence[Sample]) -> None:
        """Queue one batch for writing (waits while ``depth`` batches are pending); raises an earlier write error."""
        self._raise()
        if samples:
            self._queue.put(list(samples))

    def close(self) -> None:
        """Write everything queued, stop the thread, and raise a write error if there was one."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # an error is on its way up: write what was generated, keep that error first
            self.close()
        except Exception:  # noqa: BLE001
            import logging

            logging.getLogger("t2ibench").exception("writing the last generated images failed as well")

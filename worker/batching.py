"""Dynamic batching: requests that arrive while a batch runs go together in the next one.

A lone request is run at once (it waits for no timer), so batching costs an idle
service one thread hand-off; under load, N concurrent plans share one forward pass
instead of queueing for N. Used by the embedded API, whose requests run in a thread
pool; a solo Celery worker takes one task at a time and batches through
``plan_batch`` instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

X = TypeVar("X")
Y = TypeVar("Y")


class DynamicBatcher(Generic[X, Y]):
    """Runs ``fn(list of items) -> list of results`` on one background thread, batch by batch."""

    def __init__(self, fn: Callable[[list[X]], list[Y]], max_batch: int = 64, name: str = "batcher") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._fn = fn
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[X, Future[Y]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.batch_sizes: list[int] = []  # the last batches run, newest last (for tests and logs)

    def submit(self, item: X) -> Y:
        """The item's result, computed in some batch; its own exception if it fails."""
        future: Future[Y] = Future()
        self._queue.put((item, future))
        return future.result()

    def pending(self) -> int:
        """Requests queued for a batch that has not started yet (approximate, for load reports and tests)."""
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[tuple[X, Future[Y]]]) -> None:
        self.batch_sizes = [*self.batch_sizes[-99:], len(batch)]
        try:
            results = self._fn([item for item, _ in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # One bad item must not fail the others: run each alone so its error reaches only its caller.
            for item, future in batch:
                self._run_one(item, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)

    def _run_one(self, item: X, future: Future[Y]) -> None:
        try:
            future.set_result(self._fn([item])[0])
        except BaseException as exc:
            future.set_exception(exc)

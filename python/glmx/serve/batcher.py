"""Dynamic batching: requests that arrive within a few milliseconds share one forward pass.

Each request hands the :class:`Batcher` a block of token-id rows (all of one length); the
batcher waits up to ``max_wait_ms`` after the first pending block for more, takes blocks until
``max_batch`` rows, groups them by length (a dilated CNN pads with zeros at the ends, so rows of
different lengths are never padded into one tensor), runs the network once per length on one
worker thread, and hands each request its rows of the last hidden state and the logits. At most
``max_queue`` rows wait; a request's rows are admitted as a whole: one that does not fit beside
those waiting raises :class:`QueueFull` (HTTP 429). A request larger than the queue itself
runs when nothing else waits (its size is bounded by the server's item limits), so every
valid request can run.
With ``enabled=False`` every block runs alone, as it arrives (the baseline of the benchmark).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch


class QueueFull(Exception):
    """More rows are waiting than the queue holds; the client should retry later."""


@dataclass
class _Job:
    ids: torch.Tensor
    future: asyncio.Future
    hidden: bool


@dataclass
class BatchStats:
    """Counters for ``GET /v1/models`` and the benchmark."""

    forward_passes: int = 0
    rows: int = 0
    requests: int = 0
    rejected: int = 0
    busy_s: float = 0.0
    max_rows_per_pass: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Batcher:
    """Runs ``net`` on batches of token-id blocks (see the module docstring).

    Args:
        net: a GPN-like network with ``hidden_states(ids)`` and ``head`` (or ``forward``).
        device: where the network lives.
        max_batch: most rows in one forward pass (a larger block runs alone).
        max_wait_ms: how long the first pending block waits for company.
        max_queue: most rows waiting; more raises :class:`QueueFull`.
        enabled: ``False`` runs every block alone, at once.
        dtype: autocast dtype on CUDA (``None``: fp32).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        device: torch.device,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        enabled: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.net = net
        self.device = device
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.enabled = enabled
        self.dtype = dtype if device.type == "cuda" else None
        self.stats = BatchStats()
        self._pending: list[_Job] = []
        self._pending_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glmx-serve-forward")
        self._hidden: Any = net.hidden_states

    async def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stops the loop; pending requests fail."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._pool.shutdown(wait=False)

    async def submit(
        self, ids: torch.Tensor, hidden: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(n, L, V)`` and (with ``hidden``) last hidden states ``(n, L, H)``, fp32 on
        the CPU, for the rows ``ids`` ``(n, L)`` (one request of one block).

        Raises:
            QueueFull: when the rows do not fit beside those already waiting.
        """
        return (await self.submit_all([(ids, hidden)]))[0]

    async def submit_all(
        self, blocks: list[tuple[torch.Tensor, bool]]
    ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """The results of :meth:`submit` for every ``(ids, hidden)`` block of one request,
        admitted to the queue as a whole: either all its rows wait or none do.

        Raises:
            QueueFull: when the rows do not fit beside those already waiting (a request
                larger than ``max_queue`` is admitted only into an empty queue).
        """
        n = sum(int(ids.shape[0]) for ids, _ in blocks)
        if self._pending_rows and self._pending_rows + n > self.max_queue:
            self.stats.rejected += 1
            hint = " (more than the queue holds: it runs when nothing else waits)"
            raise QueueFull(
                f"{self._pending_rows} rows are queued and this request needs {n} "
                f"(limit {self.max_queue}{hint if n > self.max_queue else ''}); retry shortly"
            )
        assert self._wake is not None, "Batcher.start() was not called"
        loop = asyncio.get_running_loop()
        futures = []
        # no await between the check and the appends: the request's rows enter together
        for ids, hidden in blocks:
            fut = loop.create_future()
            self._pending.append(_Job(ids, fut, hidden))
            futures.append(fut)
        self._pending_rows += n
        self.stats.requests += 1
        self._wake.set()
        return list(await asyncio.gather(*futures))

    def _take(self) -> list[_Job]:
        if not self.enabled:
            jobs = [self._pending.pop(0)]
        else:
            jobs, rows = [], 0
            while self._pending and (
                not jobs or rows + self._pending[0].ids.shape[0] <= self.max_batch
            ):
                job = self._pending.pop(0)
                jobs.append(job)
                rows += int(job.ids.shape[0])
        self._pending_rows -= sum(int(j.ids.shape[0]) for j in jobs)
        return jobs

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if self.enabled and self._pending_rows < self.max_batch:
                # the first block waits a few ms for company (never longer than max_wait)
                deadline = time.monotonic() + self.max_wait
                while self._pending_rows < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), left)
                    except asyncio.TimeoutError:
                        break
            jobs = self._take()
            jobs = [j for j in jobs if not j.future.cancelled()]
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(self._pool, self._run, jobs)
            except Exception as err:  # noqa: BLE001 - handed to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            for job, res in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(res)

    @torch.inference_mode()
    def _run(self, jobs: list[_Job]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        t0 = time.perf_counter()
        by_len: dict[int, list[int]] = {}
        for i, job in enumerate(jobs):
            by_len.setdefault(int(job.ids.shape[1]), []).append(i)
        out: list[Any] = [None] * len(jobs)
        for idx in by_len.values():
            ids = torch.cat([jobs[i].ids for i in idx]).to(self.device)
            with torch.autocast("cuda", dtype=self.dtype, enabled=self.dtype is not None):
                h = self._hidden(ids)
                head = getattr(self.net, "head", None)
                logits = head(h) if head is not None else self.net(ids)
            h, logits = h.float().cpu(), logits.float().cpu()
            self.stats.forward_passes += 1
            self.stats.rows += int(ids.shape[0])
            self.stats.max_rows_per_pass = max(self.stats.max_rows_per_pass, int(ids.shape[0]))
            lo = 0
            for i in idx:
                n = int(jobs[i].ids.shape[0])
                out[i] = (logits[lo : lo + n], h[lo : lo + n] if jobs[i].hidden else None)
                lo += n
        self.stats.busy_s += time.perf_counter() - t0
        return out

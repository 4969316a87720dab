"""LinkLoader: the order, sharding, threads, prefetch, device transfer and position of link
minibatches; each batch is built by :class:`~scalevgae.sampling.link.LinkSampler`."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor

from scalevgae._threads import set_intra_op_threads
from scalevgae.distributed import rank_batch
from scalevgae.graph import Graph
from scalevgae.loader.order import EpochOrder, mix64
from scalevgae.ops.validate import check_index_range, check_index_tensor
from scalevgae.sampling.link import LinkBatch, LinkSampler


class LinkLoader:
    """Minibatches for link prediction: every positive pair exactly once per epoch, plus
    ``neg_ratio`` sampled non-edges per positive, the sampled blocks of all their endpoints and
    the features of the input nodes.

    Args:
        graph: the message-passing graph (usually the training graph).
        x: ``[num_nodes, F]`` features (torch tensor, numpy array or memmap; None: no features).
        pos_pairs: ``[2, P]`` positive pairs (usually each training edge once).
        batch_size: positive pairs per batch (the last batch may be smaller).
        fanouts: neighbor fanouts, first hop first (see ``sample_neighbors``).
        neg_ratio: negatives per positive, drawn by ``negative_pairs`` (``neg_method``), never an
            edge of ``graph`` nor of any graph in ``exclude`` (pass the full graph so no held-out
            edge is trained as a non-edge), never a self pair.
        shuffle: a new order of the positives every epoch.
        exclude_batch_edges: drop the batch's positive edges (both directions) from its blocks
            (no label leakage). The rows keep their ``d_i / k_i`` weights, which stay an unbiased
            estimate over the remaining neighbors; the normalization keeps the graph's degrees.
        device: where batches go (default: the graph's device). Sampling runs on the graph's
            device; a CUDA device gets batches prepared on a side stream.
        generator: seeds the loader once (None: the global RNG). Batch ``b`` of epoch ``e`` is a
            function of (that seed, e, b) only: the same for any ``num_workers``, and resumable
            through :meth:`state_dict` / :meth:`load_state_dict`.
        num_workers: background threads preparing the next batches while the current one is
            used (0: prepare in the calling thread). At most ``prefetch`` batches wait.
        worker_threads: intra-op (OpenMP) threads of each background thread (None: torch's
            default). 1 keeps a sampling thread from fighting the training thread for cores.
        aggregate_threads: intra-op threads of a background thread's one long op, the fused
            sample-and-aggregate of ``aggregate_input`` (None: ``torch.get_num_threads()`` when
            the loader is made). One pass over ~10^5 rows (70-100 ms single-threaded at 10^6-10^7
            nodes) pays its barrier once, unlike the sampler's many small ops; measured on 2
            cores it raised training pairs/s by ~14% at 10^6 nodes and ~20% at 10^7 over 1
            thread. The batches do not depend on it.
        aggregate_input: apply the first block's GCN aggregation to the features here, from the
            full ``x`` (a torch tensor on the graph's device; otherwise this option does
            nothing): ``batch.x`` becomes ``[blocks[0].num_dst, F]`` and ``blocks[0]`` an
            :class:`~scalevgae.sampling.aggregated.AggregatedBlock`. Right for models whose first
            layer aggregates the raw features linearly (a GCN layer without input dropout): it
            skips the gather of the outer hop's features and moves the aggregation into the
            loader's thread. With fanout -1 at the input layer that aggregation is exact and is
            computed once for all nodes when the loader is made (``self.sampler.table``), then
            gathered per batch.
        input_table: that precomputed table if the caller has it (e.g. one mapped copy shared
            by a host's ranks; see :class:`~scalevgae.sampling.link.LinkSampler`).
        shard: ``(rank, world)`` for data-parallel training. Every rank must use the same seed:
            all ranks draw the same epoch order, cut it into global batches of
            ``batch_size * world`` pairs, and this rank takes the ``rank``-th (near-equal) slice
            of each (:func:`scalevgae.distributed.rank_batch`). So every positive pair is seen
            exactly once per epoch across ranks and every rank has the same number of batches.
            Negatives and neighbour samples then also depend on the rank. ``(0, 1)``: a single
            process, bit-identical to a loader without the option.

    Batch ``b`` is built by ``self.sampler`` (a :class:`~scalevgae.sampling.link.LinkSampler`,
    which holds the sampling options above) from its positives and a generator seeded by
    (seed, epoch, b); the loader only decides which positives, where and when.

    Iterating starts a new epoch, unless :meth:`load_state_dict` was just called, in which case
    it resumes the saved epoch at the saved batch. One iterator at a time.

    Example::

        split = split_edges(data.graph)
        loader = LinkLoader(split.train_graph, data.x, split.train_pos, batch_size=1024,
                            fanouts=[10, 5], exclude=[data.graph])
        for batch in loader:
            h = batch.x                                   # [len(n_id), F]
            for block, lin, act in zip(batch.blocks, (lin1, lin2), ("relu", None)):
                h = block.propagate(lin(h), activation=act)
            # h: [num_seeds, F'] embeddings of the seeds; score batch.src/batch.dst vs batch.label
    """

    def __init__(
        self,
        graph: Graph,
        x: Any,
        pos_pairs: Tensor,
        *,
        batch_size: int,
        fanouts: Sequence[int],
        neg_ratio: int = 1,
        neg_method: str = "uniform",
        shuffle: bool = True,
        exclude_batch_edges: bool = False,
        exclude: Optional[Sequence[Graph]] = None,
        replace: bool = False,
        device: Optional[torch.device | str] = None,
        generator: Optional[torch.Generator] = None,
        num_workers: int = 1,
        prefetch: int = 2,
        worker_threads: Optional[int] = 1,
        aggregate_threads: Optional[int] = None,
        backend: Optional[str] = None,
        shard: tuple[int, int] = (0, 1),
        aggregate_input: bool = False,
        input_table: Optional[Tensor] = None,
    ):
        self.sampler = LinkSampler(graph, x, fanouts=fanouts, neg_ratio=neg_ratio, neg_method=neg_method,
                                   exclude=exclude, exclude_batch_edges=exclude_batch_edges, replace=replace,
                                   backend=backend, aggregate_input=aggregate_input,
                                   aggregate_threads=(torch.get_num_threads() if aggregate_threads is None
                                                      else aggregate_threads), table=input_table)
        check_index_tensor(pos_pairs.reshape(-1) if isinstance(pos_pairs, Tensor) else pos_pairs, "pos_pairs")
        if pos_pairs.dim() != 2 or pos_pairs.size(0) != 2:
            raise ValueError(f"pos_pairs must have shape [2, P], got {tuple(pos_pairs.shape)}")
        check_index_range(pos_pairs.reshape(-1), graph.num_nodes, "pos_pairs")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        rank, world = (int(v) for v in shard)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
        if num_workers < 0 or prefetch < 1:
            raise ValueError(f"need num_workers >= 0 and prefetch >= 1, got {num_workers}, {prefetch}")
        for name, v in (("worker_threads", worker_threads), ("aggregate_threads", aggregate_threads)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be None or a positive int, got {v!r}")
        self.pos_pairs = pos_pairs.to(graph.device)  # int32 or int64 as given: no int64 copy of every pair
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = torch.device(device) if device is not None else graph.device
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.worker_threads = worker_threads
        self.rank, self.world = rank, world
        self._offset = 0  # pairs of the current epoch already consumed before a cross-world resume
        dev = generator.device if generator is not None else torch.device("cpu")
        self._seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev).item())
        self._epoch = 0
        self._pos = 0
        self._started = False
        self._resume = False
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    # What the sampler samples from (read-only views of its settings).
    @property
    def graph(self) -> Graph:
        return self.sampler.graph

    @property
    def x(self) -> Any:
        return self.sampler.x

    @property
    def fanouts(self) -> list[int]:
        return self.sampler.fanouts

    @property
    def aggregate_input(self) -> bool:
        """Whether batches carry the first layer's aggregation instead of ``x[n_id]``."""
        return self.sampler.aggregate_input

    def __len__(self) -> int:
        return self._num_batches(self.pos_pairs.size(1))

    def _num_batches(self, num_pairs: int, world: Optional[int] = None) -> int:
        global_batch = self.batch_size * (world or self.world)
        return (num_pairs + global_batch - 1) // global_batch

    # ---- position / checkpointing ----
    @property
    def epoch(self) -> int:
        return self._epoch

    def state_dict(self) -> dict:
        """The position: epoch, batches already yielded in it, and the loader's seed; with
        ``world`` and ``pairs_done`` (pairs of the epoch consumed by all ranks together) so a
        loader with another ``world`` can resume it."""
        done = min(self.pos_pairs.size(1), self._offset + self._pos * self.batch_size * self.world)
        state = {"epoch": self._epoch, "batch": self._pos, "seed": self._seed, "num_batches": len(self)}
        if self.world > 1 or self._offset:
            state.update(world=self.world, pairs_done=done, offset=self._offset)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Resume at a saved position: the next iteration yields the remaining batches of the
        saved epoch, identical to those the saved run would have produced. A state saved with
        another ``world`` (or batch count) resumes at the same global position: the epoch's
        remaining pairs (same order) are cut into this loader's global batches."""
        world, offset = int(state.get("world", 1)), int(state.get("offset", 0))
        nb = int(state.get("num_batches", self._num_batches(self.pos_pairs.size(1), world)))
        if nb != self._num_batches(self.pos_pairs.size(1), world):
            raise ValueError(f"state is for {nb} batches per epoch, this loader has "
                             f"{self._num_batches(self.pos_pairs.size(1), world)} with world={world}")
        self._seed, self._epoch = int(state["seed"]), int(state["epoch"])
        if world == self.world and offset == 0:
            self._pos, self._offset = int(state["batch"]), 0
        else:  # resume the global position: pairs of the epoch consumed by all ranks together
            done = state.get("pairs_done", offset + int(state["batch"]) * self.batch_size * world)
            self._pos, self._offset = 0, min(int(done), self.pos_pairs.size(1))
        if self._offset + self._pos * self.batch_size * self.world >= self.pos_pairs.size(1):
            self._epoch, self._pos, self._offset = self._epoch + 1, 0, 0
        self._started = self._resume = True

    def batches_left(self) -> int:
        """Batches the next iteration yields (all of an epoch unless resuming mid-epoch)."""
        if self._resume:
            return self._num_batches(self.pos_pairs.size(1) - self._offset) - self._pos
        return len(self)

    def _begin(self) -> tuple[int, int]:
        if self._resume:
            self._resume = False
            return self._epoch, self._pos
        if self._started:
            self._epoch += 1
        self._started, self._pos, self._offset = True, 0, 0
        return self._epoch, 0

    # ---- batches ----
    def _order(self, epoch: int) -> EpochOrder:
        """The epoch's order of the positives, evaluated per batch (O(1) to start an epoch)."""
        return EpochOrder(self.pos_pairs.size(1), mix64(self._seed, epoch, -1) if self.shuffle else None)

    def _batch_generator(self, epoch: int, b: int) -> torch.Generator:
        g = torch.Generator(device=self.graph.device)
        if self.world == 1 and not self._offset:
            return g.manual_seed(mix64(self._seed, epoch, b))
        return g.manual_seed(mix64(self._seed, epoch, b, self.rank, self.world, self._offset))

    def _batch_index(self, order: EpochOrder, b: int) -> Tensor:
        """Positions (into ``pos_pairs``) of this rank's pairs in batch ``b``."""
        if self.world == 1 and not self._offset:
            return order[b * self.batch_size : (b + 1) * self.batch_size]
        return rank_batch(order, b, self.batch_size, self.rank, self.world, start=self._offset)

    def make_batch(self, epoch: int, b: int, order: Optional[EpochOrder] = None,
                   on_phase: Optional[Callable[[str], None]] = None) -> LinkBatch:
        """Batch ``b`` of epoch ``epoch`` (deterministic), on the graph's device.

        ``on_phase(name)`` is called after taking the positives (``"positives"``) and after each
        of the sampler's phases (see :meth:`LinkSampler.sample`)."""
        order = self._order(epoch) if order is None else order
        idx = self._batch_index(order, b).to(self.graph.device)
        pos = self.pos_pairs[:, idx]
        if on_phase is not None:
            on_phase("positives")
        return self.sampler.sample(pos, self._batch_generator(epoch, b), on_phase)

    def _produce(self, epoch: int, b: int, order: EpochOrder) -> tuple[LinkBatch, Any]:
        if self._stream is None:
            return self.make_batch(epoch, b, order).to(self.device), None
        with torch.cuda.stream(self._stream):
            batch = self.make_batch(epoch, b, order).to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        return batch, event

    def _consume(self, item: tuple[LinkBatch, Any]) -> LinkBatch:
        batch, event = item
        if event is not None:
            cur = torch.cuda.current_stream(self.device)
            cur.wait_event(event)
            for t in batch.tensors():  # memory made on the side stream, used on this one
                if t.is_cuda:
                    t.record_stream(cur)
        return batch

    def __iter__(self) -> Iterator[LinkBatch]:
        epoch, start = self._begin()
        order = self._order(epoch)
        n = self._num_batches(self.pos_pairs.size(1) - self._offset)
        if self.num_workers == 0:
            for b in range(start, n):
                item = self._produce(epoch, b, order)
                self._pos = b + 1
                yield self._consume(item)
            return
        yield from self._threaded(epoch, start, n, order)

    def _threaded(self, epoch: int, start: int, n: int, order: EpochOrder) -> Iterator[LinkBatch]:
        w_count = min(self.num_workers, max(1, n - start))
        stop = threading.Event()
        queues = [queue.Queue(maxsize=max(1, self.prefetch // w_count)) for _ in range(w_count)]

        def put(q: queue.Queue, item: tuple) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return
                except queue.Full:
                    continue

        def work(w: int) -> None:
            try:
                if self.worker_threads is not None:
                    set_intra_op_threads(self.worker_threads)
                for b in range(start + w, n, w_count):
                    if stop.is_set():
                        return
                    put(queues[w], ("ok", self._produce(epoch, b, order)))
            except BaseException as e:  # handed to the consumer, re-raised there
                put(queues[w], ("error", e))

        threads = [threading.Thread(target=work, args=(w,), daemon=True, name=f"LinkLoader-{w}")
                   for w in range(w_count)]
        for t in threads:
            t.start()
        try:
            for b in range(start, n):
                w = (b - start) % w_count
                while True:
                    try:
                        kind, val = queues[w].get(timeout=0.5)
                        break
                    except queue.Empty:
                        if not threads[w].is_alive() and queues[w].empty():
                            raise RuntimeError("LinkLoader worker thread ended unexpectedly") from None
                if kind == "error":
                    raise val
                self._pos = b + 1
                yield self._consume(val)
        finally:
            stop.set()
            for q in queues:
                while True:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        break
            for t in threads:
                t.join()

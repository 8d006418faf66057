"""Data-parallel Keras training: ``model.compile(..., distributed=True)``.

Every rank holds the whole model and takes its own rows of each global batch. The
training step is split at the gradient allreduce: a compiled *gradient* function
(forward, loss, backward) runs on the rank's rows; gradients and layer state, weighted
by the rank's share of the batch, are summed over ranks in a few large buckets; then a
compiled *update* function (the optimizer) runs on every rank with identical inputs, so
the ranks' weights stay bit-identical without ever being sent again.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import ops, pytree
from ..errors import DistributedError
from ..nn import batch_moments
from ..nn.fitting import Trainer
from ..tracing import is_array_leaf
from . import collectives
from .world import World, barrier, init

MESSAGE_BYTES = 2048  # a failed rank's error message, as sent to the others


class FlatLayout:
    """Where each gradient and layer-state leaf lives in the one vector a training step
    allreduces, followed by the loss and one failure flag per rank. The compiled gradient
    function writes that vector itself (every leaf already multiplied by the rank's share
    of the global batch, so the sum over ranks is the global batch's mean), and the
    compiled update reads its gradients straight out of it: no copies in Python."""

    def __init__(self, params: Any, state: Any, size: int):
        grads, _, self.grad_tree = pytree.flatten(params, is_array_leaf)
        states, _, self.state_tree = pytree.flatten(state, is_array_leaf)
        dtypes = {np.asarray(a).dtype for a in grads + states}
        if len(dtypes) != 1 or not np.issubdtype(next(iter(dtypes)), np.floating):
            raise NotImplementedError(
                "distributed training packs gradients and layer state into one vector: it "
                f"needs one floating-point dtype for all of them, got {sorted(map(str, dtypes))}"
            )
        self.dtype = dtypes.pop()
        self.shapes = [np.shape(a) for a in grads + states]
        self.offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in self.shapes])])
        self.n_grads = len(grads)
        self.loss = int(self.offsets[-1])
        self.flags = self.loss + 1
        self.length = self.flags + size

    def grads(self, flat: Any) -> Any:
        """The gradient tree as reshaped slices of the (traced) vector."""
        o = self.offsets
        leaves = [ops.reshape(flat[o[i] : o[i + 1]], self.shapes[i]) for i in range(self.n_grads)]
        return pytree.unflatten(self.grad_tree, leaves)

    def state(self, flat: np.ndarray, old: Any, moments: dict, rows: int) -> Any:
        """The layer-state tree from the reduced vector: the rows-weighted mean of what
        the ranks returned, except batch-norm statistics, which come back as the global
        batch's moments and are finished here (``moments``: owner -> updates per row;
        ``rows``: the global batch's)."""
        o = self.offsets
        leaves = [
            flat[o[i] : o[i + 1]].reshape(self.shapes[i]).copy()
            for i in range(self.n_grads, len(self.shapes))
        ]
        state = pytree.unflatten(self.state_tree, leaves)
        for owner, updates in moments.items():
            for update in updates:
                mean, var = batch_moments.finish(update, rows, old[owner], state[owner])
                state[owner][update.mean_key], state[owner][update.var_key] = mean, var
        return state


class DistributedTrainer(Trainer):
    """``Trainer`` over an MPI world. ``fit``'s ``batch_size`` is per rank; the global
    batch is ``batch_size * size`` rows, and rank r takes rows [r*bs, (r+1)*bs) of it.
    ``evaluate`` splits the rows across ranks and reduces; ``predict`` runs locally on
    all rows. fit and evaluate are collective: every rank must call them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.world: World = init()
        self._local_batch = 1
        self._layout: FlatLayout | None = None
        self._moments: dict = {}  # batch-norm updates found while tracing (batch_moments)
        self.allreduce_seconds = 0.0  # time in the gradient allreduce (benchmarks)
        self.grad_seconds = 0.0  # time in the compiled gradient function
        # With separate_waits a barrier before each allreduce measures the time spent
        # waiting for the slowest rank (wait_seconds) apart from the reduction itself.
        self.separate_waits = False
        self.wait_seconds = 0.0

    @property
    def _on_device(self) -> bool:
        return False  # gradients go through host memory to MPI

    def _graph_functions(self) -> dict:
        return {
            **super()._graph_functions(),
            "grad": (self._flat_grad_fn, ()),
            "update": (self._flat_update_fn, (0, 2)),  # params, opt_state in place
        }

    def _batched_arguments(self, kind: str) -> tuple[int, ...] | None:
        if kind == "grad" and self.dynamic_batch:  # x and y: a short last batch, one graph
            return (3, 4)
        return super()._batched_arguments(kind)

    def _flat_grad_fn(self, params, frozen, state, x, y, key, weight):
        """(the allreduce vector, the rank's mean loss, its batch outputs)."""
        with batch_moments.collecting() as moments:
            grads, new_state, loss, outputs = self._grad_fn(params, frozen, state, x, y, key)
        rows = pytree.flatten(x, is_array_leaf)[0][0].shape[0]  # (n with a dynamic batch)
        # (per row, the same for every batch size)
        self._moments = {o: [u.per_row(rows) for u in us] for o, us in moments.items()}
        layout = self._layout
        assert layout is not None
        leaves = pytree.flatten(grads, is_array_leaf)[0]
        leaves += pytree.flatten(new_state, is_array_leaf)[0]
        parts = [ops.reshape(leaf, (-1,)) for leaf in leaves] + [ops.reshape(loss, (1,))]
        parts.append(np.zeros(self.world.size, layout.dtype))  # the failure flags
        return ops.concatenate(parts, axis=0) * weight, loss, outputs

    def _flat_update_fn(self, params, flat, opt_state, lr):
        layout = self._layout
        assert layout is not None
        return self.optimizer.update(params, layout.grads(flat), opt_state, lr)

    def _step_rows(self, batch_size: int) -> int:
        self._local_batch = batch_size
        return batch_size * self.world.size

    def _shown(self, verbose: int) -> int:
        return verbose if self.world.rank == 0 else 0

    def _shuffle_rng(self, seed: int | None) -> np.random.Generator:
        """Rank 0's seed (drawn fresh when None) on every rank: one permutation for all."""
        drawn = np.random.SeedSequence().entropy % (1 << 62) if seed is None else seed
        value = np.array([drawn], np.int64)
        collectives.broadcast_buffers([value], 0, "the shuffling seed broadcast")
        return np.random.default_rng(int(value[0]))

    def _begin_fit(self) -> None:
        """Every rank starts from rank 0's weights, layer state and optimizer state."""
        model = self.model
        tree = {"params": model.params(), "state": model.state(), "optimizer": self.opt_state}
        synced = collectives.broadcast(tree, root=0)
        model.assign(synced["params"], synced["state"])
        self.opt_state = synced["optimizer"]
        if self._layout is None:  # (the compiled functions read it while tracing)
            self._layout = FlatLayout(model.params(trainable=True), model.state(), self.world.size)

    def _fit_step(
        self, params: Any, frozen: Any, state: Any, xs: list, ys: list, idx: np.ndarray, metrics
    ) -> tuple[Any, Any, Any]:
        w, bs, layout = self.world, self._local_batch, self._layout
        assert layout is not None
        mine = idx[w.rank * bs : (w.rank + 1) * bs]
        # A rank left without rows (a short last batch) computes on one of rank 0's rows
        # and contributes it with weight 0: every rank runs and traces the same graphs.
        rows = mine if len(mine) else idx[:1]
        flat, failure = None, None
        start = time.perf_counter()
        try:
            xb = self.model.pack_inputs([a[rows] for a in xs])
            labels = self._pack_y([t[rows] for t in ys])
            key = np.int64(self.steps_run * w.size + w.rank)  # each rank its own masks
            weight = np.asarray(len(mine) / len(idx), layout.dtype)
            flat, loss, outputs = self.function("grad")(
                params, frozen, state, xb, labels, key, weight
            )
            if len(mine):
                metrics.add(len(mine), loss, outputs, labels)
        except Exception as e:  # the others must hear of it, not wait forever
            flat = np.zeros(layout.length, layout.dtype)
            flat[layout.flags + w.rank] = 1
            failure = e
        reduced_at = time.perf_counter()
        self.grad_seconds += reduced_at - start
        if self.separate_waits:  # (diagnosis: a barrier first, timed on its own)
            barrier()
            self.wait_seconds += time.perf_counter() - reduced_at
            reduced_at = time.perf_counter()
        collectives.reduce_buffers([flat], "sum", "the gradient allreduce")
        self.allreduce_seconds += time.perf_counter() - reduced_at
        failed = [int(r) for r in np.flatnonzero(flat[layout.flags :])]
        if failed:
            raise self._step_failure(failed, failure)
        lr = np.float32(self.optimizer.lr)
        params, self.opt_state = self.function("update")(params, flat, self.opt_state, lr)
        new_state = layout.state(flat, state, self._moments, len(idx))
        return params, new_state, float(flat[layout.loss])

    def _step_failure(self, failed: list[int], failure: Exception | None) -> DistributedError:
        """The error every rank raises when ranks ``failed``: the first failed rank's
        message is broadcast (as bytes) so that all ranks report the same cause."""
        root = failed[0]
        message = np.zeros(MESSAGE_BYTES, np.uint8)
        if self.world.rank == root and failure is not None:
            text = f"{type(failure).__name__}: {failure}".encode()[: MESSAGE_BYTES - 1]
            message[: len(text)] = np.frombuffer(text, np.uint8)
        collectives.broadcast_buffers([message], root, "the failure report")
        cause = bytes(message).rstrip(b"\0").decode(errors="replace")
        error = DistributedError(
            f"training step {self.steps_run} failed on rank {root} (failed ranks: {failed}) "
            f"of {self.world.size}: {cause}; every rank stops, weights as before the epoch"
        )
        error.__cause__ = failure
        return error

    def _epoch_result(self, epoch_metrics: Any) -> dict[str, float]:
        totals = epoch_metrics.totals()
        collectives.reduce_buffers([totals], "sum", "the metrics allreduce")
        epoch_metrics.set_totals(totals)
        return epoch_metrics.result()

    def _eval_rows(self, n: int) -> tuple[int, int]:
        r, size = self.world.rank, self.world.size
        return n * r // size, n * (r + 1) // size

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

from .. import pytree
from ..errors import DistributedError
from ..nn.fitting import Trainer
from ..tracing import is_array_leaf
from . import collectives
from .world import World, init

MESSAGE_BYTES = 2048  # a failed rank's error message, as sent to the others


class StepReduction:
    """What one training step sums over ranks, in buffers reused from step to step:
    gradients and layer state (each rank's multiplied by its share of the batch, so the
    sum is the global batch's mean), and float64 scalars: the weighted loss, then one
    failure flag per rank."""

    def __init__(self, params: Any, state: Any, size: int):
        p_leaves, _, self.grad_tree = pytree.flatten(params, is_array_leaf)
        s_leaves, _, self.state_tree = pytree.flatten(state, is_array_leaf)
        self.n_grads = len(p_leaves)
        arrays = [np.asarray(a) for a in p_leaves + s_leaves]
        self.tensors = collectives.FlatBuffers(arrays)
        self.scalars = np.zeros(1 + size, np.float64)

    def layout(self) -> str:
        return self.tensors.layout()

    def pack(self, grads: Any, state: Any, loss: float, weight: float, failed_rank: int) -> None:
        if grads is None:  # no rows here, or the step failed: contribute nothing
            self.tensors.pack([None] * len(self.tensors.slots), 0.0)
        else:
            leaves = pytree.flatten(grads, is_array_leaf)[0]
            leaves += pytree.flatten(state, is_array_leaf)[0]
            self.tensors.pack(leaves, weight)
        self.scalars[:] = 0.0
        self.scalars[0] = loss * weight
        if failed_rank >= 0:
            self.scalars[1 + failed_rank] = 1.0

    def reduce(self) -> None:
        buffers = [*self.tensors.buffers.values(), self.scalars]
        collectives.reduce_buffers(buffers, "sum", "the gradient allreduce")

    def failed_ranks(self) -> list[int]:
        return [int(r) for r in np.flatnonzero(self.scalars[1:])]

    def unpack(self) -> tuple[Any, Any, float]:
        """(mean gradients as views of the buffer, layer state as copies, mean loss)."""
        views = self.tensors.views()
        grads = pytree.unflatten(self.grad_tree, views[: self.n_grads])
        state = pytree.unflatten(self.state_tree, [np.array(v) for v in views[self.n_grads :]])
        return grads, state, float(self.scalars[0])


class DistributedTrainer(Trainer):
    """``Trainer`` over an MPI world. ``fit``'s ``batch_size`` is per rank; the global
    batch is ``batch_size * size`` rows, and rank r takes rows [r*bs, (r+1)*bs) of it.
    ``evaluate`` splits the rows across ranks and reduces; ``predict`` runs locally on
    all rows. fit and evaluate are collective: every rank must call them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.world: World = init()
        self._local_batch = 1
        self._reduction: StepReduction | None = None
        self.allreduce_seconds = 0.0  # time spent in the gradient allreduce (benchmarks)
        self.grad_seconds = 0.0  # time spent in the compiled gradient function

    @property
    def _on_device(self) -> bool:
        return False  # gradients go through host memory to MPI

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
        trainable, size = model.params(trainable=True), self.world.size
        self._reduction = StepReduction(trainable, model.state(), size)
        collectives.check_agreement(self._reduction.layout(), "fit")

    def _fit_step(
        self, params: Any, frozen: Any, state: Any, xs: list, ys: list, idx: np.ndarray, metrics
    ) -> tuple[Any, Any, Any]:
        w, bs = self.world, self._local_batch
        mine = idx[w.rank * bs : (w.rank + 1) * bs]
        grads = new_state = None
        loss, failure = 0.0, None
        start = time.perf_counter()
        if len(mine):
            try:
                xb = self.model.pack_inputs([a[mine] for a in xs])
                labels = self._pack_y([t[mine] for t in ys])
                # each rank draws its own dropout masks
                key = np.int64(self.steps_run * w.size + w.rank)
                grads, new_state, loss, outputs = self.function("grad")(
                    params, frozen, state, xb, labels, key
                )
                metrics.add(len(mine), loss, outputs, labels)
            except Exception as e:  # the others must hear of it, not wait forever
                grads, failure = None, e
        reduced_at = time.perf_counter()
        self.grad_seconds += reduced_at - start
        reduction = self._reduction
        assert reduction is not None
        weight = len(mine) / len(idx)
        reduction.pack(grads, new_state, float(loss), weight, -1 if failure is None else w.rank)
        reduction.reduce()
        self.allreduce_seconds += time.perf_counter() - reduced_at
        failed = reduction.failed_ranks()
        if failed:
            raise self._step_failure(failed, failure)
        mean_grads, new_state, mean_loss = reduction.unpack()
        lr = np.float32(self.optimizer.lr)
        params, self.opt_state = self.function("update")(params, mean_grads, self.opt_state, lr)
        return params, new_state, mean_loss

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

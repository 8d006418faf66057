"""The batch of a CPU convolution split into slots: one per core, each with its own
scratch, taking its images one at a time (Target.conv_batch "slots")."""

from __future__ import annotations

from ..ir import dtypes as dt
from ..ir.kernel import INDEX, Binary, If, Let, Loop, Stmt, Var, ceil_div, const_index, iadd, imul
from ..ir.symbolic import Dim
from .target import cpu_slots


class ImageSlots:
    """``count`` slots of ``per_slot`` images each, every slot with ``per_image``
    elements of scratch (``scratch``, at ``base`` for the current slot). ``n`` is the
    image being processed; ``loops`` wraps the statements for one image."""

    def __init__(self, kb, batch: int | Dim, hint: str, d: dt.DType, per_image: int):
        self.batch = batch
        if type(batch) is Dim:  # a symbolic batch: every slot, ceil(n / slots) images each
            self.count, self.ragged = cpu_slots(), True
            self.per_slot = ceil_div(batch, self.count)
        else:
            per_slot = -(-batch // min(batch, cpu_slots()))
            self.count, self.ragged = -(-batch // per_slot), batch % per_slot != 0
            self.per_slot = const_index(per_slot)
        self.scratch = kb.scratch(hint, d, self.count * per_image)
        self.slot, self.nth = kb.fresh("slot"), kb.fresh("nth")
        self.n = Var(kb.fresh("image"), INDEX)
        self.base = imul(Var(self.slot, INDEX), const_index(per_image))

    def loops(self, image: list[Stmt]) -> list[Stmt]:
        """Slots in parallel, each running ``image`` for its images in turn."""
        if self.ragged:  # the last slot has fewer images
            image = [If(Binary("lt", self.n, const_index(self.batch), dt.bool_), image)]
        first = imul(Var(self.slot, INDEX), self.per_slot)
        body = [Let(self.n.name, iadd(first, Var(self.nth, INDEX))), *image]
        per_slot = Loop(self.nth, self.per_slot, body)
        return [Loop(self.slot, self.count, [per_slot], parallel=self.count > 1)]

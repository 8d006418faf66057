"""The blocking of the packed GEMM, derived from the machine it runs on.

The packed GEMM (gemm_packed.py) keeps one MR-row micro-panel of A in L1 while it streams
the NR-column micro-panels of B's KC x NC block, which stays in L2, past it; MC rows of A
share one packed B block. So, for a machine with vector registers of ``lanes`` floats,
``registers`` of them, and L1d / L2 of ``l1`` / ``l2`` bytes per core:

- micro-tile: MR rows by VECTORS vectors of accumulators, MR * VECTORS + VECTORS + 1
  registers live (accumulators, one step's B vectors, A's broadcast) - 6 x 4 on the 32
  registers of AVX-512, 6 x 2 on the 16 of AVX2;
- KC: the A micro-panel (MR x KC) in half of L1, the other half for the B lines streaming
  through; at most 256 (longer rank updates gain nothing measurable and grow the buffers);
- NC: the B block (KC x NC) in half of L2;
- MC: the A block (MC x KC) in the other half of L2, a multiple of MR.

Blockings are bounded by the workspace every caller allocates (gemm_packed.WORKSPACE_BYTES).
gemm_tune.py times a few blockings around this model on the machine and keeps the fastest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .gemm_packed import A_BUDGET_ELEMENTS, B_BUDGET_ELEMENTS
from .machine import Machine

FLOAT_BYTES = 4  # the model sizes blocks for float32, the dtype training runs in


@dataclass(frozen=True)
class MicroTile:
    """The register tile, the shape of the compiled micro-kernel."""

    mr: int
    vectors: int
    lanes: int


@dataclass(frozen=True)
class GemmParams:
    mr: int  # rows of the micro-tile
    vectors: int  # vectors per row of the micro-tile (NR = vectors * lanes)
    lanes: int  # float32 lanes per vector (float64 uses half)
    kc: int  # depth of one rank update
    mc: int  # rows of A per packed block (a multiple of mr)
    nc: int  # columns of B per packed block

    def __post_init__(self) -> None:
        if self.mc % self.mr or self.mc <= 0 or self.kc <= 0 or self.nc <= 0:
            raise ValueError(f"invalid GEMM blocking {self}")
        if self.mc * self.kc > A_BUDGET_ELEMENTS or self.kc * self.nc > B_BUDGET_ELEMENTS:
            raise ValueError(f"GEMM blocking {self} exceeds the packing workspace")

    @property
    def tile(self) -> MicroTile:
        return MicroTile(self.mr, self.vectors, self.lanes)

    @property
    def nr(self) -> int:
        return self.vectors * self.lanes

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> GemmParams:
        return cls(**{name: int(d[name]) for name in cls.__dataclass_fields__})


def _round_down(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)


def micro_tile(machine: Machine) -> tuple[int, int]:
    """(MR, VECTORS): as many accumulators as the registers hold beside one step's B
    vectors and A's broadcast, six rows (the shape that balances loads and FMAs)."""
    mr = 6
    vectors = (machine.vector_registers - 1) // (mr + 1)  # mr * v + v + 1 registers
    return mr, max(1, min(vectors, 4))


def model_params(machine: Machine) -> GemmParams:
    """The analytical blocking for ``machine`` (see the module docstring)."""
    lanes = machine.vector_bytes // FLOAT_BYTES
    mr, vectors = micro_tile(machine)
    kc = min(256, _round_down(machine.l1d // 2 // (mr * FLOAT_BYTES), 16))
    nc = _round_down(machine.l2 // 2 // (kc * FLOAT_BYTES), vectors * lanes)
    mc = _round_down(machine.l2 // 2 // (kc * FLOAT_BYTES), mr)
    return within_workspace(mr, vectors, lanes, kc, mc, nc)


def within_workspace(mr: int, vectors: int, lanes: int, kc: int, mc: int, nc: int) -> GemmParams:
    """The blocking with MC and NC cut to what the packing workspace holds."""
    mc = min(mc, _round_down(A_BUDGET_ELEMENTS // kc, mr))
    nc = min(nc, _round_down(B_BUDGET_ELEMENTS // kc, vectors * lanes))
    return GemmParams(mr, vectors, lanes, kc, mc, nc)

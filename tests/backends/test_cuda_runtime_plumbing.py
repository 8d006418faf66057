"""The CUDA executable's bookkeeping, with a recording stand-in for the driver (no GPU
here): which device pointers each launch gets (inputs, outputs, donated outputs folded
into their inputs, arena offsets, constants), copies in and out, the status word, and
DeviceArray inputs used in place. The kernels run in tests/gpu (on a GPU, or emulated)."""

import ctypes

import numpy as np
import pytest
from nncompile.backends.cuda import emit_cuda
from nncompile.backends.cuda import executable as cuda_executable
from nncompile.backends.cuda.driver import pointer_args

import nncompile as nc
from nncompile.compiler import lower_graph_for


class FakeDriver:
    """Device memory is one bytearray; pointers are offsets from a fake base address."""

    BASE = 1 << 32

    def __init__(self):
        self.memory = bytearray(1 << 20)
        self.top = 0
        self.launches = []
        self.status_after_launches = 0

    def make_current(self):
        pass

    def alloc(self, nbytes):
        ptr = self.BASE + self.top
        self.top += (max(nbytes, 1) + 255) // 256 * 256
        return ptr

    def free(self, ptr):
        pass

    def _view(self, ptr, nbytes):
        start = ptr - self.BASE
        return memoryview(self.memory)[start : start + nbytes]

    def to_device(self, ptr, array):
        array = np.ascontiguousarray(array)
        self._view(ptr, array.nbytes)[:] = array.tobytes()

    def to_host(self, array, ptr):
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(self._view(ptr, array.nbytes), np.uint8)

    def copy(self, dst, src, nbytes):
        self._view(dst, nbytes)[:] = bytes(self._view(src, nbytes))

    def zero(self, ptr, nbytes):
        self._view(ptr, nbytes)[:] = bytes(nbytes)
        self.status_pointer = ptr

    def load_module(self, cubin):
        return "module"

    def function(self, module, name):
        return name

    def launch(self, fn, grid, block, params, name):
        pointers = [ctypes.c_uint64.from_address(params[i]).value for i in range(len(params))]
        self.launches.append((fn, tuple(grid), tuple(block), pointers))
        if self.status_after_launches:
            self.to_device(self.status_pointer, np.array([self.status_after_launches], np.int64))

    def synchronize(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    driver = FakeDriver()
    monkeypatch.setattr(cuda_executable, "driver", lambda: driver)
    return driver


def make(fn, *args, donate=frozenset(), device_outputs=False):
    lowered = lower_graph_for(nc.trace(fn, *args), "cuda", donated_inputs=frozenset(donate))
    launches = emit_cuda(lowered.program).launches
    exe = cuda_executable.CUDAExecutable(lowered.program, launches, b"", device_outputs)
    return lowered.program, exe


def test_pointer_args_point_at_each_value():
    values, pointers = pointer_args([11, 22, 33])
    got = [ctypes.c_uint64.from_address(pointers[i]).value for i in range(3)]
    assert got == [11, 22, 33]


def test_launch_pointers_copies_and_donation(fake):
    w, x = np.arange(6, dtype=np.float32), np.ones(6, np.float32)
    program, exe = make(lambda w, x: (w - 0.5 * x, nc.tanh(w * x) + 1.0), w, x, donate={0})
    ((donated, source),) = program.donations.items()
    assert source == 0
    kept = 1 - donated
    inputs = [exe.memory[n].pointer for n in program.inputs]
    results = exe([w, x])
    assert len(fake.launches) == len(exe.launches)
    used = {p for _, _, _, ptrs in fake.launches for p in ptrs}
    assert set(inputs) <= used and exe.memory[program.outputs[kept]].pointer in used
    assert exe.memory[program.outputs[donated]].pointer not in used  # folded into input 0
    # inputs went to the device, and the donated NumPy input is the returned array
    assert np.array_equal(np.frombuffer(fake._view(inputs[1], 24), np.float32), x)
    assert results[donated] is w
    for launch, (fn, grid, block, ptrs) in zip(exe.launches, fake.launches, strict=True):
        assert fn == launch.function and grid == launch.grid and block == launch.block
        assert len(ptrs) == len(launch.params)


def test_arena_buffers_are_offsets_and_constants_are_uploaded(fake):
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    table = np.arange(8, dtype=np.float32) * 3

    def f(x):
        return nc.softmax(x @ x + table).sum()

    program, exe = make(f, x)
    exe([x])
    arena = [b for b in program.buffers.values() if b.kind == "arena"]
    assert arena
    used = {p for _, _, _, ptrs in fake.launches for p in ptrs}
    assert {exe.arena.pointer + b.offset for b in arena} <= used
    for name, array in program.constants.items():
        stored = np.frombuffer(fake._view(exe.memory[name].pointer, array.nbytes), array.dtype)
        np.testing.assert_array_equal(stored, array.reshape(-1))


def test_device_array_inputs_are_used_in_place(fake):
    w = np.arange(4, dtype=np.float32)
    program, exe = make(lambda w: w * 2.0, w, donate={0}, device_outputs=True)
    dw = cuda_executable.DeviceArray.from_numpy(w)
    (out,) = exe([dw])
    assert out is dw  # donated: updated in place in the same device memory
    (again,) = exe([out])  # and it can go straight back in
    assert again is dw
    assert all(dw.device_pointer in ptrs for _, _, _, ptrs in fake.launches)
    with pytest.raises(nc.ShapeError, match="device array"):
        exe([cuda_executable.DeviceArray(dw.device_pointer, (3,), np.float32, dw._owner)])
    # memory nncompile did not allocate, or a shape larger than the allocation: refused
    with pytest.raises(nc.ExecutionError, match="must come from"):
        exe([cuda_executable.DeviceArray(fake.alloc(16), (4,), np.float32)])
    with pytest.raises(nc.ExecutionError, match="must come from"):
        exe([cuda_executable.DeviceArray(dw.device_pointer + 8, (4,), np.float32, dw._owner)])


def test_status_word_becomes_an_execution_error(fake):
    x = np.arange(6, dtype=np.float32)
    program, exe = make(lambda x, i: nc.take(x, i, axis=0), x, np.array([1]))
    assert program.status_messages
    fake.status_after_launches = next(iter(program.status_messages))
    with pytest.raises(nc.ExecutionError, match="out of range.*CUDA"):
        exe([x, np.array([9])])


def test_bad_inputs(fake):
    program, exe = make(lambda x: x + 1, np.ones(3, np.float32))
    with pytest.raises(nc.DTypeError):
        exe([np.ones(3, np.float64)])
    with pytest.raises(nc.ShapeError):
        exe([np.ones(4, np.float32)])
    with pytest.raises(nc.ExecutionError, match="expected 1 inputs"):
        exe([])


def test_launch_arguments_are_built_once_while_the_buffers_stay(fake):
    x = np.ones(4, np.float32)
    program, exe = make(lambda x: nc.tanh(x * 2 + 1).sum(), x)
    exe([x])
    first = exe._arguments_cache
    exe([x + 1])
    assert exe._arguments_cache is first  # same device buffers: nothing rebuilt
    moved = cuda_executable.DeviceArray.from_numpy(x)
    exe([moved])
    assert exe._arguments_cache is not first
    assert any(moved.device_pointer in pointers for *_, pointers in fake.launches[-2:])

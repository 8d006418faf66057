"""The LLVM backend: kernel IR -> LLVM IR (llvmlite) -> native code in-process."""

import os

# LLVM 22 has only opaque pointers; llvmlite's IR layer must print `ptr`, not `float*`.
os.environ.setdefault("LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS", "0")

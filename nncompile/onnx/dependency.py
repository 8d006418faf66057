"""The `onnx` package is an optional extra: imported here only, with a clear error."""

from __future__ import annotations

from types import ModuleType

from ..errors import MissingDependencyError


def require_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as e:
        raise MissingDependencyError(
            "ONNX import needs the onnx package: pip install 'nncompile[onnx]'"
        ) from e
    return onnx

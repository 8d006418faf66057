"""The importer's own error: a node, op or attribute nncompile cannot run (never a wrong
answer instead)."""

from __future__ import annotations

from ..errors import NCError


class UnsupportedError(NCError, NotImplementedError):
    """An ONNX node nncompile does not support: names the node, its op type, the opset and
    (when one is to blame) the attribute or input."""

    def __init__(self, message: str, node: str = "", op_type: str = "", opset: int = 0):
        super().__init__(message)
        self.node, self.op_type, self.opset = node, op_type, opset

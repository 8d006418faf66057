"""The ``nncompile`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .ir.errors import NCError


def _cmd_ops(args: argparse.Namespace) -> int:
    from .backends.numpy import REFERENCE
    from .ir import all_ops

    for name, opdef in sorted(all_ops().items()):
        attrs = ", ".join(opdef.attrs)
        ref = "ref" if name in REFERENCE else "---"
        print(f"{name:<16} {opdef.category:<12} {ref}  {attrs}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .ir import Graph

    with open(args.graph, encoding="utf-8") as f:
        g = Graph.from_json(f.read())
    print(g)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args)


def _not_yet(name: str, issue: int):
    def run(args: argparse.Namespace) -> int:
        raise NotImplementedError(
            f"`nncompile {name}` is not implemented yet (planned in issue #{issue})"
        )

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nncompile",
        description="A graph-compiling neural-network runtime: trace, differentiate, "
        "optimize and lower Python models to native code.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("ops", help="list the registered primitive ops")
    s.set_defaults(func=_cmd_ops)
    s = sub.add_parser("show", help="load a graph saved as JSON, verify it and print it")
    s.add_argument("graph", help="path to a .json graph (Graph.to_json)")
    s.set_defaults(func=_cmd_show)
    s = sub.add_parser(
        "demo",
        help="train the seed MNIST CNN compiled (offline 8x8 digits, or --data DIR with MNIST)",
    )
    from .demo import add_arguments

    add_arguments(s)
    s.set_defaults(func=_cmd_demo)
    for name, issue, text in [
        ("bench", 8, "benchmark compiled vs eager (not implemented yet)"),
        ("viz", 8, "draw a graph with graphviz (not implemented yet)"),
        ("dump", 8, "write every compilation stage to a folder (not implemented yet)"),
    ]:
        s = sub.add_parser(name, help=text)
        s.set_defaults(func=_not_yet(name, issue))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (NotImplementedError, NCError) as e:
        print(f"nncompile: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

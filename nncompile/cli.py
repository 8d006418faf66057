"""The ``nncompile`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .argtypes import non_negative_int, positive_float, positive_int
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
    from .ir.errors import SerializationError

    with open(args.graph, "rb") as f:  # bytes: from_json reports bad encodings itself
        text = f.read()
    try:
        g = Graph.from_json(text)
    except SerializationError as e:
        raise SerializationError(f"{args.graph}: {e}") from None
    print(g)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    import os

    from . import bench
    from .workloads import BUILTIN, resolve

    if any(str(t).endswith(".onnx") for t in args.targets) or args.vs == "onnxruntime":
        from .onnx.commands import cmd_bench

        return cmd_bench(args)
    targets = args.targets or list(BUILTIN)
    modes = ["eager", "llvm", "cuda"] + (["torch", "torch.compile"] if args.vs == "torch" else [])
    if args.threads:
        os.environ["NNCOMPILE_THREADS"] = str(args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    from .backends.cuda.emulator import emulating

    if emulating() and not args.json:
        print("NNCOMPILE_CUDA_EMULATOR=1: the cuda rows ran on the CPU emulation (a test of")
        print("the path, not a measure of any GPU)\n")
    if not args.json:
        print(bench.provenance() + "\n")
    everything = []
    for spec in targets:
        workload = resolve(spec, args.batch, args.size)
        results = bench.bench(
            workload, modes, args.steps, args.budget, not args.cached, args.torch_device
        )
        everything += results
        if not args.json:
            print(bench.table(workload, results), flush=True)
            if args.profile:
                from .profiler import profile
                from .roofline import measure_peaks

                report = profile(workload.fn, *workload.args, steps=args.steps)
                print(
                    "  per kernel (llvm), against peaks measured on this machine: the best "
                    "1024^3 sgemm and a 64 MiB copy (in-cache kernels can beat the copy rate)"
                )
                print("  " + report.table(args.top, measure_peaks()).replace("\n", "\n  "))
            print()
    if args.json:
        print(bench.to_json(everything))
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from .backends.llvm.amx import bf16_form
    from .backends.llvm.amx_peak import amx_peak
    from .backends.llvm.fma_peak import bf16_dot_peak, fma_peak
    from .backends.llvm.gemm_tune import gemm_tuning

    tuning = gemm_tuning("model" if args.model else "force")
    print(tuning.describe())
    if not args.model:
        where = "stored in the cache folder" if tuning.stored_at else "not stored (cache off)"
        print(f"{where}{': ' + tuning.stored_at if tuning.stored_at else ''}")
    print(f"float32 FMA peak, one core: {fma_peak():.0f} GFLOP/s")
    amx = amx_peak()
    if amx:
        print(f"AMX bf16 tile peak, one core: {amx:.0f} GFLOP/s")
    dot = bf16_dot_peak()
    if dot:
        print(f"AVX512-BF16 vdpbf16ps peak, one core: {dot:.0f} GFLOP/s")
    form = {
        "amx": "AMX tiles",
        "amx-emulated": "the AMX form, its tile instructions emulated (NNCOMPILE_AMX_EMULATE)",
        "avx512bf16": "AVX512-BF16 vdpbf16ps",
        "float32": "float32 FMAs on bf16-rounded operands (no speed-up)",
    }[bf16_form()]
    print(f"matmul_precision='bf16' computes with {form}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .onnx.commands import cmd_run

    return cmd_run(args)


def _cmd_viz(args: argparse.Namespace) -> int:
    from .visualize import graph_at_stage, render, to_dot
    from .workloads import resolve

    workload = resolve(args.target, args.batch, args.size)
    graph = graph_at_stage(workload.fn, workload.args, args.stage)
    title = f"{workload.name}: {workload.description} ({args.stage}, {len(graph.nodes)} nodes)"
    collapse = None if args.no_collapse else args.collapse_above
    written, message = render(to_dot(graph, "auto", collapse, title), args.output)
    print(message)
    return 0


def _cmd_dump(args: argparse.Namespace) -> int:
    from .dump import dump_target

    for path in dump_target(
        args.target,
        args.output,
        args.stage,
        args.backend,
        args.batch,
        args.size,
        args.dynamic_batch,
        args.matmul_precision,
    ):
        print(path)
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (exit code 2), like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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
    target_help = (
        "a built-in workload (mlp, cnn, lstm, elementwise, matmul), or file.py:name / "
        "module:name: an nn.Sequential (its training step), a function returning one, or a "
        "function with NAME_example_args() in its module"
    )
    s = sub.add_parser("bench", help="time compiled vs eager (and PyTorch with --vs torch)")
    s.add_argument("targets", nargs="*", help=target_help + " (default: every built-in)")
    s.add_argument(
        "--vs",
        choices=("torch", "onnxruntime"),
        help="also PyTorch eager and torch.compile; for a model.onnx: onnxruntime (CPU)",
    )
    s.add_argument(
        "--torch-device", default="cpu", choices=("cpu", "cuda"), help="where PyTorch runs"
    )
    s.add_argument("--json", action="store_true", help="machine-readable results")
    s.add_argument("--profile", action="store_true", help="per-kernel roofline table")
    s.add_argument(
        "--steps", type=positive_int, default=20, help="timed steps per mode (default 20)"
    )
    s.add_argument("--budget", type=positive_float, default=10.0, help="seconds per mode at most")
    s.add_argument("--batch", type=positive_int, default=64)
    s.add_argument("--size", type=positive_int, help="elementwise: elements; matmul: n of n^3")
    s.add_argument("--threads", type=positive_int, help="threads for nncompile and PyTorch")
    s.add_argument("--top", type=positive_int, default=12, help="kernels shown by --profile")
    s.add_argument(
        "--cached",
        action="store_true",
        help="let compilation use the on-disk object cache (default: cold compile times)",
    )
    s.set_defaults(func=_cmd_bench)
    s = sub.add_parser(
        "tune", help="time the GEMM blockings on this machine, store and print the fastest"
    )
    s.add_argument(
        "--model", action="store_true", help="only print the analytical blocking (no timing)"
    )
    s.set_defaults(func=_cmd_tune)
    s = sub.add_parser("run", help="run an ONNX model on inputs from .npy files")
    s.add_argument("model", help="an .onnx file")
    s.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="[NAME=]FILE.npy",
        help="a graph input (repeat, in graph-input order, or NAME=FILE.npy)",
    )
    s.add_argument("--output", help="write the outputs to this .npz (keys: output names)")
    s.add_argument("--backend", default="eager", choices=("eager", "llvm", "cuda"))
    s.set_defaults(func=_cmd_run)
    s = sub.add_parser("viz", help="draw a workload's graph with graphviz")
    s.add_argument("target", help=target_help)
    s.add_argument("--stage", default="fused", choices=("traced", "grad", "optimized", "fused"))
    s.add_argument("-o", "--output", default="graph.svg", help=".svg, .png, .pdf or .dot")
    s.add_argument("--batch", type=positive_int, default=64)
    s.add_argument("--size", type=positive_int, help="elementwise: elements; matmul: n of n^3")
    s.add_argument(
        "--collapse-above", type=non_negative_int, default=400, help="collapse clusters above N"
    )
    s.add_argument("--no-collapse", action="store_true")
    s.set_defaults(func=_cmd_viz)
    s = sub.add_parser("dump", help="write a workload's compilation stages to a folder")
    s.add_argument("target", help=target_help)
    s.add_argument("-o", "--output", default="nncompile_dump", help="folder to write")
    s.add_argument(
        "--stage",
        action="append",
        choices=("ir", "kernels", "llvm", "asm", "cuda", "all"),
        help="what to keep (repeatable; default all)",
    )
    s.add_argument("--backend", default="llvm", choices=("llvm", "cuda"))
    s.add_argument("--batch", type=positive_int, default=64)
    s.add_argument("--size", type=positive_int, help="elementwise: elements; matmul: n of n^3")
    s.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="compile for every batch size: the dumps show the batch as the symbol n",
    )
    s.add_argument(
        "--matmul-precision",
        choices=("float32", "bf16"),
        help="as nc.compile's matmul_precision (bf16: AMX tiles / tensor-core code)",
    )
    s.set_defaults(func=_cmd_dump)
    return p


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Errors are one line on stderr naming the problem, with exit code 2:
    nncompile's own (NCError), a missing feature, and files that cannot be read or
    written. Output piped into a program that stops reading (``| head``) ends quietly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # Python's documented handling: later writes (and the exit's flush) go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (NotImplementedError, NCError) as e:
        print(f"nncompile: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"nncompile: {where}{e.strerror or _one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nncompile: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

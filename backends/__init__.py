"""Backends (installed as ``nncompile.backends``): numpy (eager reference), later llvm, cuda."""

"""How many threads each compiled call runs on: measured, not assumed.

On an idle machine a step runs fastest on every core. When other processes (another
training job, a test runner's workers) hold the cores, a team of threads that must meet
at a barrier after every parallel loop waits, at each barrier, for a thread the OS has
not scheduled: a step then takes 100x longer (measured: 0.6 ms -> 117 ms with two jobs on
two cores). One thread never waits for another.

So every executable keeps a ``ThreadChooser``: it runs calls on its chosen count and, now
and then, one call on the other count (1 or all), and keeps whichever was faster. Probes
of a losing choice back off so that they cost at most a few per cent: on an idle machine
the one-thread probe is ~1.3x a call, under contention the all-threads probe can be 50x.
A call on all threads that suddenly takes several times its recent best (contention just
started) brings the next probe forward; after a switch, the choice left behind is probed
again soon (a stall of one vCPU passes in milliseconds), and backs off from there.

Fork: libgomp's worker threads do not exist in a child made by fork(), and its first
parallel region there waits for them forever. A child forked after this process ran a
parallel call runs every call on one thread (one warning says so); results are the same.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from statistics import median

FIRST_PROBE = 3  # the first probe: the third call (the first is not timed: page faults)
MIN_GAP, MAX_GAP = 16, 4096  # calls between probes of the losing choice
REPROBE_AFTER_SWITCH = 4  # calls before the choice just left behind is probed again
PROBE_BUDGET = 0.03  # a losing probe's extra time, amortized over the gap
# ... and the gap grows no longer than this many seconds of calls, where the budget allows:
# a gap doubled to MAX_GAP while NumPy's BLAS threads spun between steps (a user's own
# matmul each step: the team loses to one thread) kept a 1 ms step on one thread for ~4 s
# after the NumPy work stopped (MLP B=256: 1.10 ms a step instead of 0.72)
PROBE_INTERVAL = 0.5
SWITCH_MARGIN = 0.85  # a probe must beat the current choice's median by this factor
SUDDEN_SLOWDOWN = 4.0  # a call this many times its recent best: probe now
CONFIRMATIONS = 2  # winning probes in a row that switch the choice
# Calls of the current choice timed before a probe may switch: the first calls of a team
# after an idle spell pay for waking its sleeping threads, and compared with one of those
# a one-thread probe looks like a win (measured: a MobileNet at batch 32 kept on one
# thread, 0.10 ms instead of 0.07).
MIN_SAMPLES = 3

_state = {"parallel_ran": False, "forked_child": False, "warned": False}


def _after_fork_in_child() -> None:
    if _state["parallel_ran"]:
        _state["forked_child"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def note_parallel_run() -> None:
    """Something ran a libgomp team in this process (a child forked from now on must not)."""
    _state["parallel_ran"] = True


def serial_after_fork() -> bool:
    """True in a child forked after parallel calls ran (libgomp cannot be used there)."""
    if _state["forked_child"] and not _state["warned"]:
        _state["warned"] = True
        warnings.warn(
            "nncompile: this process was forked after compiled code ran on several threads; "
            "libgomp cannot start threads in a forked child, so compiled calls here run on "
            "one thread (start worker processes with the 'spawn' or 'forkserver' method "
            "to keep them parallel)",
            RuntimeWarning,
            stacklevel=4,
        )
    return _state["forked_child"]


class ThreadChooser:
    """Per executable: run on ``most`` threads or on one, whichever is faster lately."""

    def __init__(self, most: int):
        self.most = most
        self.choice = most
        self.recent = {most: deque(maxlen=5), 1: deque(maxlen=5)}
        self.until_probe = FIRST_PROBE
        self.gap = MIN_GAP
        self.wins = 0  # probes in a row that beat the current choice
        self.cold = True  # the first call pays for first-touch page faults: not a sample

    def all_threads(self) -> int:
        """Every thread this executable may use (1 in a child forked after parallel calls):
        for kernel-by-kernel runs, which are not timed for the choice."""
        return 1 if self.most <= 1 or serial_after_fork() else self.most

    def threads(self) -> int:
        """The thread count for the next call."""
        if self.most <= 1:
            return 1
        if serial_after_fork():
            return 1
        note_parallel_run()
        self.until_probe -= 1
        if self.until_probe <= 0:
            return 1 if self.choice != 1 else self.most
        return self.choice

    def record(self, threads: int, seconds: float) -> None:
        """What a call on ``threads`` threads took."""
        if self.most <= 1:
            return
        if self.cold:
            self.cold = False
            return
        if threads == self.choice:
            recent = self.recent[threads]
            # A team that suddenly got slow: other processes took the cores, probe one
            # thread now. (On one thread, a slowdown is that same contention, and a probe
            # of the whole team would only wait at its barriers.)
            if threads > 1 and len(recent) >= 3 and seconds > SUDDEN_SLOWDOWN * min(recent):
                self.until_probe = min(self.until_probe, 1)
            recent.append(seconds)
            return
        # A probe of the other choice.
        current = self.recent[self.choice]
        self.recent[threads].append(seconds)
        if len(current) < MIN_SAMPLES:  # too little to compare with: probe again later
            self.until_probe = MIN_SAMPLES - len(current) + 1
            return
        typical = median(current)
        if seconds < SWITCH_MARGIN * typical:
            # Timing under contention is bursty: one lucky probe is not enough. The next
            # call probes again, and two wins in a row switch.
            self.wins += 1
            if self.wins < CONFIRMATIONS:
                self.until_probe = 1
                return
            # The choice left behind is probed again soon: what made it lose may have
            # been a stall of a few milliseconds (a vCPU descheduled), and a gap sized by
            # the cost measured in that stall (~1600 calls) kept short runs on one thread
            # (and 16 calls still showed in a 20-call benchmark's median). If it loses
            # again, the back-off below sizes the gap by that probe's cost.
            self.gap = REPROBE_AFTER_SWITCH
            self.choice = threads
        else:
            # Back off: twice the last gap, up to PROBE_INTERVAL's worth of calls, and in
            # any case long enough that this probe's extra time is a small share of the
            # calls between probes.
            cost = seconds / max(typical, 1e-9) - 1.0
            interval = max(MIN_GAP, int(PROBE_INTERVAL / max(typical, 1e-9)))
            grown = min(2 * self.gap, interval)
            self.gap = min(MAX_GAP, max(grown, int(cost / PROBE_BUDGET)))
        self.wins = 0
        self.until_probe = self.gap

"""Ctrl-C during a fit always reaches the caller.

Third-party samplers treat Ctrl-C as "stop and return the draws so far" (PyMC's
sequential sampler, nutpie's blocking call): a fit would then go on and return a
model built from part of the draws.  :func:`never_swallowed` records every
SIGINT that arrives while the block runs (and still raises KeyboardInterrupt
where it arrives, so the sampler stops); if the block then finishes as though
nothing happened, KeyboardInterrupt is raised at its end (and in place of an
error the interrupted sampler raised instead).
"""

from __future__ import annotations

import contextlib
import signal
import threading

#: SIGINTs seen by the innermost :func:`never_swallowed` block (None: outside one)
_seen = None


def check():
    """Raise KeyboardInterrupt now if a Ctrl-C arrived in the current
    :func:`never_swallowed` block: called where a sampler has just returned, so
    that nothing is computed from the draws of an interrupted run."""
    if _seen:
        raise KeyboardInterrupt


def pymc_callback(trace, draw):
    """PyMC's per-draw callback: once Ctrl-C has arrived, end every chain at its
    next draw (PyMC's sequential sampler ends the interrupted chain only, and would
    run the next ones to the end)."""
    check()


@contextlib.contextmanager
def never_swallowed():
    """See the module docstring.  Only in the main thread (where Python runs
    signal handlers); elsewhere, and under a handler that is not Python's, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN / SIG_DFL: Ctrl-C does not raise here
        yield
        return
    global _seen
    outer, seen = _seen, []
    _seen = seen

    def record(signum, frame):
        seen.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, record)
    try:
        yield
    except Exception as exc:  # e.g. PyMC: "Not enough samples to build a trace"
        if seen:
            raise KeyboardInterrupt from exc
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _seen = outer
    if seen:
        raise KeyboardInterrupt

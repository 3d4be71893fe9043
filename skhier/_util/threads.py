"""Work on threads that Ctrl-C stops: no thread outlives an interrupted fit."""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np


def stop_flag():
    """The flag a chain kernel reads once per sweep: it returns when ``flag[0] != 0``."""
    return np.zeros(1, dtype=np.int64)


def thread_map(fn, items, workers, stop=None):
    """``[fn(x) for x in items]`` on up to ``workers`` threads (numba kernels
    release the GIL), the calling thread waiting, so that it receives Ctrl-C even
    while every kernel runs.  If it is interrupted or a task fails: tasks not yet
    started are cancelled, ``stop[0] = 1`` asks the running chain kernels to return
    at their next sweep, and every thread is joined before the exception goes on."""
    items = list(items)
    if stop is None and (workers <= 1 or len(items) <= 1):
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max(1, min(workers, len(items))))  # (threads start on submit)
    futures = []
    try:
        for x in items:
            futures.append(pool.submit(fn, x))
        pending = futures
        while pending:  # short waits: the signal handler runs between them
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
        return [f.result() for f in futures]
    except BaseException:
        if stop is not None:
            stop[0] = 1
        for f in futures:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True)

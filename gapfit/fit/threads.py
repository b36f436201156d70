"""Thread limits for one call: numba and BLAS on a single thread inside a ``with`` block.

Limits are applied to the calling thread for the duration of the block and restored after,
never changed for the whole process (a worker process may run other tasks, and a user's
script its own threads).
"""
from contextlib import contextmanager
from functools import lru_cache

import numba


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


@contextmanager
def single_thread():
    """Run the block with one numba thread and one BLAS/OpenMP thread."""
    previous = numba.get_num_threads()
    if previous == 1:
        with _controller().limit(limits=1):
            yield
        return
    numba.set_num_threads(1)
    try:
        with _controller().limit(limits=1):
            yield
    finally:
        numba.set_num_threads(previous)

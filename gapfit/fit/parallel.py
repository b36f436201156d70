"""Where the map over chunks runs: in this process, in local worker processes, or on dask.

Every backend returns the results in the order of the chunks, and
``map_reduce_chunks`` combines them along one fixed binary tree, so the
reduction (and therefore the fit) is the same whichever backend runs the map.
"""
import uuid
from functools import partial

from .memory import own_peak_rss_mb
from .threads import single_thread


def _run_in_worker(func, chunk):
    """func(chunk) on one numba and one BLAS thread: the workers are the parallelism."""
    with single_thread():
        return func(chunk)


def _run_and_report_peak(func, chunk):
    """func(chunk) and the worker process's peak resident memory (MB) afterwards."""
    return _run_in_worker(func, chunk), own_peak_rss_mb()


def _combine_in_worker(combine, left, right):
    with single_thread():
        return combine(left, right)


def _dask_client(client):
    if isinstance(client, str):
        if client != "dask":
            raise ValueError(f"backend must be 'dask' or a dask Client, not {client!r}")
        from dask.distributed import get_client
        try:
            return get_client()
        except ValueError:
            raise ValueError("backend='dask' needs a dask.distributed Client in this process: "
                             "create one first (Client(address)) or pass it as backend") from None
    return client


def _task_name(func):
    return getattr(getattr(func, "func", func), "__name__", "chunk")


def tree_reduce(items, combine):
    """combine() the items, taken in order, along a fixed binary tree.

    The tree depends only on the number of items (a binary counter: equal-sized
    subtrees merge as soon as both exist, leftovers merge right to left), so at
    most about log2(n) partial results are held at once, and the same tree
    arises whether combine computes the value now or submits it as a task.
    """
    stack = []
    for item in items:
        level, value = 0, item
        while stack and stack[-1][0] == level:
            value = combine(stack.pop()[1], value)
            level += 1
        stack.append((level, value))
    if not stack:
        raise ValueError("nothing to reduce: no chunks")
    value = stack.pop()[1]
    while stack:
        value = combine(stack.pop()[1], value)
    return value


def _consume(items):
    """Yield the items of a list in order, dropping each from the list as it goes."""
    items.reverse()
    while items:
        yield items.pop()


def _note_dask_workers(client, memory):
    if memory is not None:
        memory.note_worker(max(client.run(own_peak_rss_mb).values(), default=None))


def _joblib_results(func, chunks, n_jobs, memory):
    """Results in chunk order from loky worker processes, as they arrive."""
    from joblib import Parallel, delayed
    tasks = (delayed(_run_and_report_peak)(func, chunk) for chunk in chunks)
    try:  # joblib >= 1.3 hands results over as they arrive
        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")
    except TypeError:
        parallel = Parallel(n_jobs=n_jobs, backend="loky")
    for result, peak in parallel(tasks):
        if memory is not None:
            memory.note_worker(peak)
        yield result


def _submit_chunks(client, func, chunks):
    """(name, futures): func(chunk) on dask workers, one task per chunk, keys under a fresh
    unique name (a rerun never reuses an earlier run's results); a dead worker's chunks run
    again."""
    name = f"{_task_name(func)}-{uuid.uuid4().hex[:8]}"
    return name, client.map(partial(_run_in_worker, func), chunks, pure=False, retries=2,
                            key=[f"{name}-{i}" for i in range(len(chunks))])


def map_chunks(func, chunks, n_jobs=None, client=None, progress=None, memory=None):
    """[func(c) for c in chunks], computed by the chosen backend.

    n_jobs : None or 1 runs here (numba and BLAS use all cores); n > 1 (or -1,
        all cores) uses that many local worker processes (joblib/loky), each
        limited to one thread so the machine is not oversubscribed.
    client : a ``dask.distributed.Client`` (or "dask" for the default client):
        chunks are computed on its workers, one numba/BLAS thread per task;
        dask reruns the chunks of a worker that dies.
    progress : optional callable wrapping an iterable (e.g. tqdm) for the serial path.
    memory : optional ``gapfit.memory.PeakMemory`` told the workers' peak memory.
    """
    chunks = list(chunks)
    if client is not None:
        client = _dask_client(client)
        _, futures = _submit_chunks(client, func, chunks)
        results = client.gather(futures)
        _note_dask_workers(client, memory)
        return results
    if n_jobs not in (None, 1):
        return list(_joblib_results(func, chunks, n_jobs, memory))
    iterable = progress(chunks) if progress is not None else chunks
    return [func(chunk) for chunk in iterable]


def map_reduce_chunks(func, combine, chunks, n_jobs=None, client=None, progress=None,
                      memory=None):
    """tree_reduce([func(c) for c in chunks], combine) without holding all results.

    Backends as in ``map_chunks``. Serial and joblib fold results into the tree
    as they arrive (memory: O(log n) results); dask submits the same tree as
    tasks, so the reduction runs on the workers and only the final value
    reaches the client. The tree is fixed, so the result is the same on every
    backend and whatever order the chunks finish in (for an associative
    combine, up to rounding the same as any other grouping).
    """
    chunks = list(chunks)
    if client is not None:
        client = _dask_client(client)
        name, futures = _submit_chunks(client, func, chunks)
        merges = iter(range(len(chunks)))

        def submit(left, right):
            # priority: a merge runs as soon as its two inputs exist, before further chunks,
            # so workers hold O(log n) pieces rather than every chunk's result
            return client.submit(_combine_in_worker, combine, left, right, pure=False,
                                 retries=2, priority=1, key=f"{name}-combine-{next(merges)}")

        # hand the futures over one by one: a chunk's result is released once merged
        result = tree_reduce(_consume(futures), submit).result()
        _note_dask_workers(client, memory)
        return result
    if n_jobs not in (None, 1):
        return tree_reduce(_joblib_results(func, chunks, n_jobs, memory), combine)
    iterable = progress(chunks) if progress is not None else chunks
    return tree_reduce((func(chunk) for chunk in iterable), combine)

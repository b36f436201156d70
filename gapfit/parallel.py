"""Where the map over chunks runs: in this process, in local worker processes, or on dask.

Every backend returns the results in the order of the chunks, so the
reduction (and therefore the fit) is identical whichever runs the map.
"""
import os


def _limit_worker_threads():
    """One numba and one BLAS thread per worker process: the workers are the parallelism."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import numba
        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _run_in_worker(func, chunk):
    _limit_worker_threads()
    return func(chunk)


def map_chunks(func, chunks, n_jobs=None, client=None, progress=None):
    """[func(c) for c in chunks], computed by the chosen backend.

    n_jobs : None or 1 runs here (numba and BLAS use all cores); n > 1 (or -1,
        all cores) uses that many local worker processes (joblib/loky), each
        limited to one thread so the machine is not oversubscribed.
    client : a ``dask.distributed.Client`` (or "dask" for the default client):
        chunks are computed on its workers; dask reruns the chunks of a worker
        that dies.
    progress : optional callable wrapping an iterable (e.g. tqdm) for the serial path.
    """
    chunks = list(chunks)
    if client is not None:
        if isinstance(client, str):
            if client != "dask":
                raise ValueError(f"backend must be 'dask' or a dask Client, not {client!r}")
            from dask.distributed import get_client
            client = get_client()
        futures = client.map(func, chunks, pure=False, retries=2)
        return client.gather(futures)
    if n_jobs not in (None, 1):
        from joblib import Parallel, delayed
        return Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_run_in_worker)(func, chunk) for chunk in chunks)
    iterable = progress(chunks) if progress is not None else chunks
    return [func(chunk) for chunk in iterable]

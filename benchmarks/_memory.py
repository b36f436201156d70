"""Peak memory (RSS, MB) and wall time of a Python callable or an external command.

Each measurement runs in a fresh process so that the peak belongs to that job alone.
"""

# Why not simply ``ru_maxrss``: on Linux a process started by fork/vfork + exec inherits the
# peak RSS of the process it was forked from (exec folds the old address space's high-water
# mark into the new process's ``ru_maxrss``).  A 1.6 GB parent therefore made a child running
# ``/bin/true`` report 1.6 GB.  The callable's child reads ``VmHWM`` (the high-water mark of
# its own address space, reset by exec) instead, and commands run under a small helper
# process whose own small peak is the only thing they inherit.

import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time

__all__ = ["measure_call", "measure_command"]


def _maxrss_to_mb(maxrss):
    """Convert ``ru_maxrss`` to MB (10**6 bytes): Linux reports KiB, macOS bytes."""
    if sys.platform == "darwin":
        return maxrss / 1e6
    return maxrss * 1024 / 1e6


def _own_peak_rss_mb():
    """Peak RSS of this process's own address space (MB): ``VmHWM`` on Linux, else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return _maxrss_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(connection, func, args, kwargs):
    """Run ``func`` in the child; send back (ok, result or error text, wall_s, peak_rss_mb)."""
    try:
        start = time.perf_counter()
        result = func(*args, **kwargs)
        wall_seconds = time.perf_counter() - start
        peak_mb = _own_peak_rss_mb()
        connection.send((True, result, wall_seconds, peak_mb))
    except BaseException as error:  # report everything to the parent, including SystemExit
        import traceback

        connection.send((False, f"{type(error).__name__}: {error}\n{traceback.format_exc()}",
                         None, None))
    finally:
        connection.close()


def measure_call(func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` in a fresh spawned process and measure it.

    ``func``, its arguments and its result must be picklable (``func`` defined at module
    level in an importable module, or in a ``__main__`` guarded by
    ``if __name__ == "__main__"``).

    Returns
    -------
    result : the value ``func`` returned
    wall_seconds : float, wall time of the call alone (s), without process start-up and imports
    peak_rss_mb : float, peak resident set size of the child process (MB, 10**6 bytes),
        including the interpreter and everything it imported

    Raises
    ------
    RuntimeError
        if the call raised in the child (the child's traceback is in the message) or the child
        died without reporting.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, func, args, kwargs))
    process.start()
    sender.close()
    try:
        message = receiver.recv()
    except EOFError:
        message = None
    process.join()
    receiver.close()
    name = getattr(func, "__qualname__", repr(func))
    if message is None:
        raise RuntimeError(f"measure_call({name}): child process died with exit code "
                           f"{process.exitcode} before reporting")
    ok, payload, wall_seconds, peak_mb = message
    if not ok:
        raise RuntimeError(f"measure_call({name}) failed in the child process:\n{payload}")
    return payload, wall_seconds, peak_mb


# Runs in a fresh interpreter: spawns the command (inheriting stdio and working directory),
# waits for exactly that pid and writes its exit code, wall time and ru_maxrss as JSON.
_COMMAND_HELPER = """
import json, os, sys, time
report_path, argv = sys.argv[1], sys.argv[2:]
try:
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
except OSError as error:
    report = {"error": f"{type(error).__name__}: {error}"}
else:
    _, status, usage = os.wait4(pid, 0)
    report = {"returncode": os.waitstatus_to_exitcode(status),
              "wall_seconds": time.perf_counter() - start, "maxrss": usage.ru_maxrss}
with open(report_path, "w") as handle:
    json.dump(report, handle)
"""


def measure_command(argv, cwd=None):
    """Run an external command to completion and measure it.

    The command runs under a small Python helper process that waits for it with
    ``os.wait4``; the peak RSS is the ``ru_maxrss`` of the command (the largest of it and
    of its waited-for descendants).  It never falls below the helper's own peak (about
    10 MB), which the command inherits at exec.  stdout and stderr go through temporary
    files, so a chatty command cannot block on a full pipe.

    Parameters
    ----------
    argv : sequence of str, the command and its arguments (no shell; looked up on PATH)
    cwd : str or path, optional, working directory of the command

    Returns
    -------
    returncode : int (negative: killed by that signal)
    wall_seconds : float (s), from spawning the command to its exit
    peak_rss_mb : float (MB, 10**6 bytes)
    stdout, stderr : str

    Raises
    ------
    OSError if the command cannot be started (e.g. not found).
    """
    argv = [os.fspath(part) for part in argv]
    with tempfile.TemporaryDirectory() as scratch:
        report_path = os.path.join(scratch, "report.json")
        out_path = os.path.join(scratch, "stdout")
        err_path = os.path.join(scratch, "stderr")
        with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
            helper = subprocess.run([sys.executable, "-c", _COMMAND_HELPER, report_path, *argv],
                                    cwd=cwd, stdout=out_file, stderr=err_file,
                                    stdin=subprocess.DEVNULL)
        with open(out_path, "rb") as out_file, open(err_path, "rb") as err_file:
            stdout = out_file.read().decode(errors="replace")
            stderr = err_file.read().decode(errors="replace")
        if not os.path.exists(report_path):
            raise RuntimeError(f"measure_command({argv[0]}): helper process failed "
                               f"(exit code {helper.returncode}):\n{stderr}")
        with open(report_path) as handle:
            report = json.load(handle)
    if "error" in report:
        raise OSError(f"measure_command: cannot start {argv[0]!r}: {report['error']}")
    return (report["returncode"], report["wall_seconds"], _maxrss_to_mb(report["maxrss"]),
            stdout, stderr)

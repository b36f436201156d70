"""Peak resident memory (MB, 10**6 bytes) of a fit: this process and its worker processes.

Linux keeps a high-water mark of every process's resident set (``VmHWM``). A fit
that raises this process's mark has set it, so the mark after the fit is its
exact peak; a fit that stays below an earlier peak is sampled every few
milliseconds instead (a lower bound, precise to the sampling interval).
Worker processes report their own marks (since the worker started).
"""
import resource
import sys
import threading


def _proc_status_mb(field):
    """A kB field of /proc/self/status (e.g. ``VmHWM``) in MB, or None where /proc is absent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def own_peak_rss_mb():
    """High-water mark of this process's resident memory, MB (``VmHWM``; ru_maxrss elsewhere)."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def current_rss_mb():
    """Resident memory of this process now, MB (``VmRSS``; None where /proc is absent)."""
    return _proc_status_mb("VmRSS")


class PeakMemory:
    """Context manager measuring the peak resident memory while its block runs.

    Attributes after the block: ``process_mb`` (this process) and
    ``workers_mb`` (largest mark any worker process reported through
    ``note_worker``; None when no worker ran).
    """

    def __init__(self, interval=0.005):
        self.interval = interval
        self.process_mb = None
        self.workers_mb = None

    def note_worker(self, peak_mb):
        if peak_mb is not None:
            self.workers_mb = peak_mb if self.workers_mb is None else max(self.workers_mb, peak_mb)

    def _sample(self):
        while not self._stop.wait(self.interval):
            now = current_rss_mb()
            if now is not None:
                self._sampled = max(self._sampled, now)

    def __enter__(self):
        self._mark_before = own_peak_rss_mb()
        self._sampled = current_rss_mb() or 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        mark_after = own_peak_rss_mb()
        now = current_rss_mb() or 0.0
        self.process_mb = mark_after if mark_after > self._mark_before else max(self._sampled, now)
        return False

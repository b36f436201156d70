"""Output files written safely: check a destination early, write it atomically, ordinary permissions.

``check_writable`` tells, before any long work, whether a file can be created at a path
(raising an OSError that names that path, not a temporary file). ``write_atomically``
writes through a temporary file beside the target, flushes it to disk and renames it into
place, so a crash or Ctrl-C never leaves a half-written file; the result has the
permissions of any new file (``0o666`` less the user's umask), or keeps those of the
file it replaces.
"""
import errno
import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def _umask():
    try:  # Linux shows it without changing it
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(path):
    """Permission bits a file written at ``path`` gets: the existing file's, else 0o666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _named(error, path, what=None):
    """``error`` (an OSError about a temporary file or a folder) re-made to name ``path``."""
    code = error.errno if error.errno is not None else errno.EIO
    strerror = error.strerror or str(error)
    if what:
        strerror = f"{what} ({strerror.lower()})"
    kind = type(error) if isinstance(error, OSError) else OSError
    try:
        return kind(code, strerror, str(path))
    except TypeError:
        return OSError(code, strerror, str(path))


def check_writable(path):
    """Raise OSError naming ``path`` unless a file can be written there now.

    The folder must exist and take a new file (tried by creating and removing an empty
    temporary file, so read-only folders and file systems are found whoever the user
    is), and ``path`` must not be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(errno.ENOENT, f"folder {folder} does not exist", str(path))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", str(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".check", dir=folder)
    except OSError as error:
        raise _named(error, path, f"cannot create a file in {folder}") from None
    os.close(handle)
    os.unlink(temporary)


def write_atomically(path, write):
    """Call ``write(temporary path)``, flush the file to disk, then rename it onto ``path``.

    The temporary file sits beside ``path``; it is removed if anything fails (including
    KeyboardInterrupt). An OSError while creating or renaming it names ``path``.
    """
    path = Path(path)
    mode = new_file_mode(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    except OSError as error:
        raise _named(error, path) from None
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        try:
            os.replace(temporary, path)
        except OSError as error:
            raise _named(error, path) from None
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_bytes_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` with ``write_atomically``."""
    def write(temporary):
        with open(temporary, "wb") as stream:
            stream.write(data)
    write_atomically(path, write)

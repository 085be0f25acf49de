"""Files another party may have placed: regular files only, read no further than their size,
no symbolic link followed below a directory whose contents must stay inside it.

Opening with ``O_NONBLOCK`` keeps a FIFO from blocking ``open`` itself; ``fstat`` then refuses
anything that is not a regular file before a byte is read, so ``/dev/zero``, a FIFO or a socket
never hangs a caller. Where the platform lacks the ``*at`` calls (Windows), each component is
checked with ``lstat`` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import shutil
import stat
import sys
from collections.abc import Callable, Generator
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 1 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
#: Whether directories can be walked through file descriptors (no race on a swapped component).
_AT = bool(_NOFOLLOW) and os.open in os.supports_dir_fd and os.scandir in os.supports_fd


class NotRegularFileError(OSError):
    """The path exists but is a directory, FIFO, device, socket or symbolic link."""


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def why(exc: OSError) -> str:
    """Why ``exc`` happened, phrased to end a message."""
    if isinstance(exc, NotRegularFileError):
        return exc.strerror or "it is not a regular file"
    reasons = {
        errno.ELOOP: "it is a symbolic link (only regular files are accepted)",
        errno.ENOENT: "it does not exist",
        errno.EACCES: "permission denied (make it readable, e.g. chmod u+r)",
        errno.EPERM: "permission denied (make it readable, e.g. chmod u+r)",
        errno.ENOTDIR: "a folder on its path is a file or a symbolic link",
        errno.ENXIO: "it is a socket or a device, not a regular file",
        errno.EISDIR: "it is a directory",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def _regular(fd: int, name: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = kind_of(st.st_mode)
        raise NotRegularFileError(errno.EINVAL, f"it is {what}, not a regular file", name)
    return st


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open ``path`` (symlinks followed) for reading; refuse anything but a regular file."""
    fd = os.open(path, _FLAGS | _NONBLOCK)
    return fd, _regular(fd, os.fspath(path))


def open_inside(root: Path, rel: str, fd: int = -1) -> tuple[int, os.stat_result]:
    """Open ``root/rel``, a regular file, following no symbolic link below ``root`` (through
    ``fd`` from :func:`open_dir` when given). ``rel`` is a relative POSIX path without ``..``."""
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(f"{rel!r} is not a relative path inside the directory")
    if not _AT:
        path = root
        for part in parts:
            path = path / part
            if path.is_symlink():
                raise OSError(errno.ELOOP, "symbolic link", str(path))
        out = os.open(path, _FLAGS)
        return out, _regular(out, str(path))
    dirfd = os.dup(fd) if fd >= 0 else os.open(root, _FLAGS | _DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _FLAGS | _DIRECTORY | _NOFOLLOW, dir_fd=dirfd)
            os.close(dirfd)
            dirfd = inner
        out = os.open(parts[-1], _FLAGS | _NOFOLLOW | _NONBLOCK, dir_fd=dirfd)
    finally:
        os.close(dirfd)
    return out, _regular(out, rel)


def open_dir(path: str | os.PathLike[str]) -> int:
    """A descriptor of directory ``path``, itself not a symbolic link (-1 where unsupported)."""
    if not _AT:
        if os.path.islink(path) or not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", os.fspath(path))
        return -1
    return os.open(path, _FLAGS | _DIRECTORY | _NOFOLLOW)


def walk(root: Path, fd: int = -1) -> Generator[tuple[str, str], None, None]:
    """``(relative POSIX path, kind)`` for everything below ``root`` (through ``fd`` from
    :func:`open_dir` when given), depth first, following no symbolic link; ``kind`` is
    ``"dir"``, ``"file"`` or a description (``"a symbolic link"``, ``"a FIFO (named pipe)"``)."""
    stack: list[tuple[Any, str]] = [(os.dup(fd) if fd >= 0 else root, "")]
    try:
        while stack:
            where, prefix = stack.pop()
            try:
                with os.scandir(where) as entries:
                    for entry in entries:
                        rel = f"{prefix}{entry.name}"
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:  # removed meanwhile
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            yield rel, "dir"
                            inner = (
                                os.open(entry.name, _FLAGS | _DIRECTORY | _NOFOLLOW, dir_fd=where)
                                if isinstance(where, int)
                                else Path(where) / entry.name
                            )
                            stack.append((inner, f"{rel}/"))
                        elif stat.S_ISREG(st.st_mode):
                            yield rel, "file"
                        else:
                            yield rel, kind_of(st.st_mode)
            finally:
                if isinstance(where, int):
                    os.close(where)
    finally:
        for where, _ in stack:
            if isinstance(where, int):
                os.close(where)


def read_exact(fd: int, size: int) -> bytes:
    """Exactly ``size`` bytes from ``fd`` (its ``fstat`` size); the file must not shrink."""
    parts = []
    left = size
    while left:
        chunk = os.read(fd, min(left, CHUNK))
        if not chunk:
            raise OSError(errno.EIO, "the file shrank while it was read")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def stream(fd: int, size: int, sink: Callable[[bytes], object]) -> None:
    """Give the next ``size`` bytes of ``fd`` to ``sink``, a chunk at a time; the file must not
    shrink meanwhile."""
    left = size
    while left:
        chunk = os.read(fd, min(left, CHUNK))
        if not chunk:
            raise OSError(errno.EIO, "the file shrank while it was read")
        sink(chunk)
        left -= len(chunk)


def digest(fd: int, size: int, sink: Callable[[bytes], object] | None = None) -> str:
    """sha256 (hex) of the next ``size`` bytes of ``fd``, each chunk also given to ``sink``."""
    h = hashlib.sha256()

    def both(chunk: bytes) -> None:
        h.update(chunk)
        if sink is not None:
            sink(chunk)

    stream(fd, size, both)
    return h.hexdigest()


def copy_out(fd: int, size: int, dest: Path) -> str:
    """Copy ``size`` bytes of ``fd`` into the new file ``dest`` (created with the umask's mode);
    return their sha256."""
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FLAGS, 0o666)
    try:
        return digest(fd, size, functools.partial(_write_all, out))
    finally:
        os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def remove(path: Path) -> None:
    """Delete what is at ``path``: a directory tree, or a file or symbolic link (never the
    link's target); nothing if it is gone."""
    with contextlib.suppress(OSError, ValueError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


# -- renames -----------------------------------------------------------------------------------

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc without it (glibc < 2.28)
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the system or file system lacks it."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_new(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, which must not exist (``FileExistsError`` otherwise)."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    os.rename(src, dst)  # a narrow race where the system has no RENAME_NOREPLACE


def exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one atomic step; False where the system cannot."""
    return _rename2(a, b, _RENAME_EXCHANGE)

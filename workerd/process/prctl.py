"""The Linux prctl call workerd needs, which the standard library does not offer."""

from __future__ import annotations

import ctypes
import os

_PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def become_subreaper() -> None:
    """Orphaned descendants are reparented to this process instead of init, so the
    daemon can reap them and see them in its process tree."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)

"""Reading a small file that a config names (an env_file, a console_token_file, an
import's [include]): only a regular file, at most LIMIT bytes, and an open that never
blocks.

A plain read_text() of /dev/zero grows until memory runs out, and the open of a FIFO
waits for a writer forever (a daemon reloading froze). O_NONBLOCK makes that open
return at once; fstat then refuses anything that is not a regular file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["LIMIT", "UnreadableFile", "read_small_bytes", "read_small_text"]

#: The most a small file may hold: far more than any env or token file needs.
LIMIT = 1 << 20

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


class UnreadableFile(ValueError):
    """Why the file cannot be read, as one short reason (the caller names the file)."""


def read_small_bytes(path: Path, limit: int = LIMIT) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise UnreadableFile(f"[Errno {e.errno}] {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableFile("[Errno 21] Is a directory")
        if not stat.S_ISREG(mode):
            raise UnreadableFile(f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'of an unknown kind')})")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise UnreadableFile(f"[Errno {e.errno}] {e.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnreadableFile(f"over {_shown(limit)}")
    return b"".join(chunks)


def read_small_text(path: Path, limit: int = LIMIT) -> str:
    """The file's text (UTF-8); raises only UnreadableFile."""
    data = read_small_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(f"not UTF-8 (byte {e.start})") from None


def _shown(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"

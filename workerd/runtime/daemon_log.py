"""Where the daemon's own log lines go, and how they look there.

On a terminal or in a file, each line carries its time and level. Under systemd,
stderr is a journald stream (JOURNAL_STREAM names its device:inode): journald adds
the time itself, and a `<N>` syslog priority prefix on each line is what lets
`journalctl -p warning` tell a warning from chatter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TextIO

#: logging levels -> syslog priorities (sd-daemon(3)).
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """`<N>message`, every line of it (a traceback too) with the record's priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{SYSLOG_PRIORITY.get(record.levelno, 6)}>"
        return prefix + super().format(record).replace("\n", "\n" + prefix)


def is_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `stream` is the journald stream systemd connected (not merely inherited
    JOURNAL_STREAM with stderr redirected elsewhere)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def configure(stream: TextIO, verbose: bool) -> None:
    handler = logging.StreamHandler(stream)
    if is_journal(stream):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s workerd %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])

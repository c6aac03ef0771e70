"""RQ's job: imported by the work horse from the program's directory (`rq worker`
puts it on sys.path)."""

from ledger import long_job

__all__ = ["long_job"]

"""workerd: a process manager for an application's background workers."""

__version__ = "0.1.0"

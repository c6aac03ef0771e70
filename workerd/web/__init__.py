"""The daemon's HTTP side: the listeners, /metrics and the console (its routes and static files)."""

"""The hands on processes: spawn, reap, signal, sweep, read /proc and cgroups; none of it imports the loop."""

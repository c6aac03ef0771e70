"""The loop: the supervisor that applies events, what it keeps (programs, slots, tallies,
the journal, the timeline) and what feeds it (slot timers, notify, the autoscaler, the
limit watcher, the control handlers, systemd's side)."""

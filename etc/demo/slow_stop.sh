#!/bin/sh
# A worker that finishes its current job when asked to stop: SIGTERM makes it take
# three seconds to exit, well within its stop_timeout.
trap 'echo "got SIGTERM, finishing the current job..."; sleep 3; echo "done, bye"; exit 0' TERM
echo "ready (pid $$)"
while :; do
    sleep 1 &
    wait $!
done

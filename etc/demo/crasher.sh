#!/bin/sh
# A broken worker: dies half a second after starting, so workerd backs off (1s, 2s, 4s...).
echo "starting up... (pid $$)"
sleep 0.5
echo "error: cannot connect to the database" >&2
exit 1

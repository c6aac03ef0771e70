#!/bin/sh
# A well-behaved worker: one line of "work" every two seconds, until told to stop.
n=0
while :; do
    n=$((n + 1))
    echo "worker $WORKERD_INSTANCE processed job $n"
    sleep 2
done

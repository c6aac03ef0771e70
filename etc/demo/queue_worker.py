"""A queue consumer for the autoscaling demo: takes one job at a time from the SQLite
`jobs` table, "works" 0.3 s on it, and starts over. workerd scales how many of these
run from the table's row count."""

import os
import sqlite3
import time

db = sqlite3.connect(os.environ["JOBS_DB"], timeout=5, isolation_level=None)
done = 0
while True:
    db.execute("BEGIN IMMEDIATE")
    row = db.execute("SELECT id FROM jobs ORDER BY id LIMIT 1").fetchone()
    if row:
        db.execute("DELETE FROM jobs WHERE id = ?", row)
    db.execute("COMMIT")
    if row is None:
        time.sleep(0.5)
        continue
    time.sleep(0.3)
    done += 1
    if done % 5 == 0:
        print(f"worker {os.environ['WORKERD_INSTANCE']}: {done} jobs done", flush=True)

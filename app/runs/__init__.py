"""Runs: chat turns owned by the server, outliving the request that started them.

- `live`: one run in progress in this process, and the fan-out of its events to local followers.
- `event_log`: the batched writer of every run's events to PostgreSQL.
- `registry`: the runs this instance owns; starting, following (from memory or the log),
  cancelling and stopping them.
- `recovery`: maintenance, started by the lifespan: the runs of dead instances, cancels whose
  notification was missed, old logs.

Each imports only the ones above it in this list.
"""

"""Runs: chat turns owned by the server, outliving the request that started them.

- `live`: one run in progress in this process, and the fan-out of its events to local followers.
- `ending`: how a run ends (`RunEnd`).
- `log`: the event log behind one interface (`log.base`), its backends (`log.memory`,
  `log.postgres`) and the batched writer that appends to any of them (`log.writer`).
- `record`: the system of record behind one interface (`record.base`): runs' status and end,
  cancels, instances' heartbeats; `record.postgres` for the service, `record.memory` for tests.
- `registry`: the runs this instance owns; starting, following (from memory or the log),
  cancelling and stopping them.
- `recovery`: maintenance, started by the lifespan: the runs of dead instances, cancels whose
  announcement was missed, old logs.

Each imports only the ones above it in this list. The composition root (`app.main`) builds the
log, its writer and the record, and hands them to the registry and recovery: the engine reaches
a database only through the backends of the log and the record.
"""

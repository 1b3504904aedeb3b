"""runs.final_event: a run's final event, stored with its end in the system of record

The event log may be kept elsewhere than PostgreSQL, and written after the end is stored; a
reader who finds a run ended and its final event not in the log takes it from here (see
`app.runs.log.base`). Runs already ended take theirs from their log while it is kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("final_event", sa.Text(), nullable=True))
    op.execute("""
        UPDATE runs SET final_event = run_events.data
        FROM run_events
        WHERE run_events.run_id = runs.id AND run_events.seq = runs.last_seq
            AND runs.status <> 'active'
    """)


def downgrade() -> None:
    op.drop_column("runs", "final_event")

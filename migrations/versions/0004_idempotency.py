"""runs.idempotency_key: a repeated send with the same key replays the first run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("request_digest", sa.Text(), nullable=True))
    op.create_index(
        "uq_runs_user_id_idempotency_key",
        "runs",
        ["user_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_user_id_idempotency_key", table_name="runs")
    op.drop_column("runs", "request_digest")
    op.drop_column("runs", "idempotency_key")

"""ai_chats: the chat ids a Vercel AI SDK client makes, each mapped to a conversation

The AI SDK's useChat names a chat with an id of its own (a string); POST /ai/chat with the same
id continues the same conversation. Deleting the conversation forgets the mapping.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ai_chats",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("chat_id", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_ai_chats_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "chat_id", name="pk_ai_chats"),
    )
    op.create_index("ix_ai_chats_conversation_id", "ai_chats", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_ai_chats_conversation_id", table_name="ai_chats")
    op.drop_table("ai_chats")

"""threads: ai_chats generalised to any client protocol's thread ids

The AI SDK's chat ids were one protocol's way of naming a conversation; AG-UI's threadId is
another. `ai_chats` becomes `threads`, keyed by (user, protocol, thread id); its rows stay, as
the AI SDK's (`protocol = 'ai-sdk'`, the name `app.protocols.ai_sdk.PROTOCOL` gives them).
Downgrading forgets the threads of other protocols (their conversations stay).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AI_SDK = "ai-sdk"


def upgrade() -> None:
    op.drop_constraint("pk_ai_chats", "ai_chats", type_="primary")
    op.rename_table("ai_chats", "threads")
    op.alter_column("threads", "chat_id", new_column_name="thread_id")
    op.add_column(
        "threads",
        sa.Column("protocol", sa.Text(), server_default=AI_SDK, nullable=False),
    )
    op.alter_column("threads", "protocol", server_default=None)
    op.create_primary_key("pk_threads", "threads", ["user_id", "protocol", "thread_id"])
    op.execute(
        "ALTER TABLE threads RENAME CONSTRAINT fk_ai_chats_conversation_id_conversations "
        "TO fk_threads_conversation_id_conversations"
    )
    op.execute("ALTER INDEX ix_ai_chats_conversation_id RENAME TO ix_threads_conversation_id")


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM threads WHERE protocol <> :ai_sdk").bindparams(ai_sdk=AI_SDK))
    op.execute("ALTER INDEX ix_threads_conversation_id RENAME TO ix_ai_chats_conversation_id")
    op.execute(
        "ALTER TABLE threads RENAME CONSTRAINT fk_threads_conversation_id_conversations "
        "TO fk_ai_chats_conversation_id_conversations"
    )
    op.drop_constraint("pk_threads", "threads", type_="primary")
    op.drop_column("threads", "protocol")
    op.alter_column("threads", "thread_id", new_column_name="chat_id")
    op.rename_table("threads", "ai_chats")
    op.create_primary_key("pk_ai_chats", "ai_chats", ["user_id", "chat_id"])

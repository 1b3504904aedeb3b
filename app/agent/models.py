"""Which model answers: the offline one, or an OpenAI (or OpenAI-compatible) model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI

from app.agent.offline import OfflineModel
from app.settings import Settings


@asynccontextmanager
async def open_model(settings: Settings) -> AsyncIterator[Model]:
    """The configured model; its HTTP client, if it has one, is closed on the way out."""
    if settings.uses_offline_model:
        yield OfflineModel(token_delay_ms=settings.offline_token_delay_ms)
        return
    async with AsyncOpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        # The client retries refused connections, timeouts, 429 and 5xx itself, honouring
        # Retry-After, and only before a response has started: never in the middle of an answer.
        max_retries=settings.model_max_retries,
        timeout=settings.model_timeout_seconds,
    ) as client:
        if settings.agent_api == "chat_completions":
            yield OpenAIChatCompletionsModel(model=settings.agent_model, openai_client=client)
        else:
            yield OpenAIResponsesModel(model=settings.agent_model, openai_client=client)

"""Which model answers: the offline one, or an OpenAI (or OpenAI-compatible) model."""

from __future__ import annotations

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI

from app.agent.offline import OfflineModel
from app.settings import Settings


def build_model(settings: Settings) -> Model:
    if settings.uses_offline_model:
        return OfflineModel(token_delay_ms=settings.offline_token_delay_ms)
    client = AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url)
    if settings.openai_base_url:
        # Most OpenAI-compatible servers (vLLM, Ollama, LiteLLM) speak Chat Completions only.
        return OpenAIChatCompletionsModel(model=settings.agent_model, openai_client=client)
    return OpenAIResponsesModel(model=settings.agent_model, openai_client=client)

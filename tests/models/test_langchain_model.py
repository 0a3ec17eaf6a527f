from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from exapt.agents.models import LangChainModel, Model, ModelError
from exapt.agents.models.base import ARGUMENTS_ERROR_KEY, RAW_ARGUMENTS_KEY


class _Recorder(BaseChatModel):
    """Records the LangChain messages it receives and answers with their count."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recorder"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kw: Any,
    ) -> ChatResult:
        self.seen.append(messages)
        reply = AIMessage(content=f"{len(messages)} messages; stop={stop}")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def test_tool_calls_and_usage_are_mapped() -> None:
    fake = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "edit", "args": {"path": "a.py"}, "id": "c1"}],
                    invalid_tool_calls=[
                        {"name": "run", "args": "{bad json", "id": "c2", "error": "boom"}
                    ],
                    usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
                ),
                AIMessage(
                    content=[{"type": "text", "text": "all "}, {"type": "text", "text": "done"}]
                ),
            ]
        )
    )
    model = LangChainModel(fake)
    assert isinstance(model, Model)
    first = model.chat([{"role": "user", "content": "go"}], tools=[_TOOL])
    assert [c.name for c in first.tool_calls] == ["edit", "run"]
    assert first.tool_calls[0].arguments == {"path": "a.py"} and first.tool_calls[0].id == "c1"
    assert first.tool_calls[1].arguments == {
        RAW_ARGUMENTS_KEY: "{bad json",
        ARGUMENTS_ERROR_KEY: "boom",
    }
    assert (first.tokens_in, first.tokens_out, first.finish_reason) == (7, 3, "tool_calls")
    assert model.chat([{"role": "user", "content": "go"}]).text == "all done"
    with pytest.raises(ModelError, match="GenericFakeChatModel"):
        model.chat([{"role": "user", "content": "one too many"}])


def test_openai_messages_are_converted() -> None:
    recorder = _Recorder()
    model = LangChainModel(recorder, name="rec")
    reply = model.chat(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "fix it"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "run", "arguments": '{"cmd": "ls"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "a.py"},
        ]
    )
    assert reply.text.startswith("4 messages") and reply.model == "rec"
    kinds = [type(m).__name__ for m in recorder.seen[-1]]
    assert kinds == ["SystemMessage", "HumanMessage", "AIMessage", "ToolMessage"]
    assistant = recorder.seen[-1][2]
    assert isinstance(assistant, AIMessage) and assistant.tool_calls[0]["args"] == {"cmd": "ls"}


def test_complete_passes_stop_and_cuts_the_text() -> None:
    model = LangChainModel(_Recorder())
    reply = model.complete("def f():", stop=["; stop"])
    assert reply.text == "1 messages"


_TOOL = {
    "type": "function",
    "function": {"name": "edit", "parameters": {"type": "object", "properties": {}}},
}

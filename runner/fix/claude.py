"""The Claude edge of the fix loop: the API client, the submit_fix tool, message plumbing.

The API key is passed to the SDK and nowhere else: errors carry it redacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import anthropic
from pydantic import BaseModel, ConfigDict

from runner.config import FixerSettings
from runner.errors import MissingApiKeyError, ModelApiError
from runner.fix.prompts import SYSTEM_PROMPT

TOOL_NAME = "submit_fix"
SUBMIT_FIX_TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Submit a minimal fix for the reported error and a regression test, both as "
    "unified diffs against the repository at the failing commit.",
    "input_schema": {
        "type": "object",
        "properties": {
            "patch": {"type": "string", "description": "Unified diff of the source fix."},
            "test_patch": {
                "type": "string",
                "description": "Unified diff adding a regression test that fails with the "
                "reported exception before the fix; may be empty.",
            },
            "explanation": {"type": "string", "description": "Root cause and fix, short."},
        },
        "required": ["patch", "test_patch", "explanation"],
    },
}


class SubmitFix(BaseModel):
    """The input of one submit_fix call (extra keys from the model are ignored)."""

    model_config = ConfigDict(extra="ignore")

    patch: str
    test_patch: str = ""
    explanation: str = ""


def api_key(fixer: FixerSettings, environ: Mapping[str, str]) -> str:
    key = fixer.api_key.get_secret_value() if fixer.api_key else environ.get("ANTHROPIC_API_KEY")
    if not key:
        raise MissingApiKeyError(
            "no Anthropic API key: set ANTHROPIC_API_KEY "
            "(or api_key in the fixer section of runner.toml)"
        )
    return key


def make_client(
    fixer: FixerSettings, environ: Mapping[str, str] | None = None
) -> tuple[anthropic.Anthropic, str]:
    """The SDK client and the key it uses (kept only to redact it); MissingApiKeyError first."""
    env = os.environ if environ is None else environ
    key = api_key(fixer, env)
    client = anthropic.Anthropic(
        api_key=key,
        base_url=fixer.base_url or env.get("ANTHROPIC_BASE_URL") or None,
        max_retries=fixer.max_retries,
        timeout=fixer.timeout_s,
    )
    return client, key


def ask(
    client: anthropic.Anthropic, key: str, fixer: FixerSettings, messages: list[dict[str, Any]]
) -> anthropic.types.Message:
    """One forced submit_fix turn; API failures become ModelApiError with the key redacted."""
    try:
        # The tool and message dicts are the API's JSON shapes, not the SDK's TypedDicts.
        return client.messages.create(  # type: ignore[call-overload,no-any-return]
            model=fixer.model,
            max_tokens=fixer.max_tokens,
            system=SYSTEM_PROMPT,
            messages=messages,
            tools=[SUBMIT_FIX_TOOL],
            tool_choice={"type": "tool", "name": TOOL_NAME},
            # A forced tool call cannot follow thinking; models that think by
            # default (Sonnet 5) must be told not to.
            thinking={"type": "disabled"},
        )
    except anthropic.APIStatusError as exc:
        message = exc.api_message or exc.message
        raise ModelApiError(
            redact(f"the Messages API answered {exc.status_code}: {message}", key)
        ) from None
    except anthropic.APIConnectionError as exc:
        raise ModelApiError(
            redact(f"the Messages API could not be reached: {exc.message}", key)
        ) from None
    except anthropic.AnthropicError as exc:
        raise ModelApiError(redact(f"the Messages API call failed: {exc}", key)) from None


def redact(text: str, key: str) -> str:
    return text.replace(key, "[redacted]") if key else text


def reply_blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """The reply's content as request params, to continue the same conversation."""
    out: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
    return out or [{"type": "text", "text": "(empty reply)"}]


def tool_uses(message: anthropic.types.Message) -> list[Any]:
    return [b for b in message.content if b.type == "tool_use"]


def answer(message: anthropic.types.Message, text: str, ok_id: str | None = None) -> dict[str, Any]:
    """The next user turn: a tool_result for every tool_use of the reply, else plain text."""
    uses = tool_uses(message)
    if not uses:
        return {"role": "user", "content": [{"type": "text", "text": text}]}
    primary = ok_id or uses[0].id
    content = [
        {
            "type": "tool_result",
            "tool_use_id": use.id,
            "content": text if use.id == primary else f"ignored: only one {TOOL_NAME} call counts",
            "is_error": True,
        }
        for use in uses
    ]
    return {"role": "user", "content": content}

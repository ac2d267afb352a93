"""Chat's own parameter checks on top of the shared sampling checks."""

from __future__ import annotations

from gateway.backends.base import Guide
from gateway.chat.protocol import ChatCompletionRequest
from gateway.chat.structured import response_guide
from gateway.chat.tools.definitions import ToolPlan, check_tools, tool_guide
from gateway.chat.tools.parsers import FAMILIES
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.sampling import SamplingParams, bad, check_sampling

MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20


def check_params(req: ChatCompletionRequest, entry: ModelEntry) -> SamplingParams:
    """Validate a chat request's sampling parameters, ``n`` and ``logprobs``.

    Raises:
        InvalidRequestError: with ``param`` naming the offending field.
    """
    if req.n is not None and not 1 <= req.n <= MAX_CHOICES:
        raise bad(f"n must be between 1 and {MAX_CHOICES}", "n")
    if req.top_logprobs is not None:
        if not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
            raise bad(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs")
        if not req.logprobs:
            raise bad("top_logprobs requires logprobs to be true", "top_logprobs")
    return check_sampling(req, entry)


def check_tools_and_format(req: ChatCompletionRequest, entry: ModelEntry) -> tuple[ToolPlan, Guide | None]:
    """The request's tool plan and its constrained decoding, if any.

    Raises:
        InvalidRequestError: bad tool definitions, a model without tool support, or both
            ``response_format`` and a forced tool call.
    """
    plan = check_tools(req.tools, req.tool_choice, req.parallel_tool_calls)
    if plan.active and entry.tool_parser not in FAMILIES:
        raise InvalidRequestError(f"Model '{entry.id}' does not support tools",
                                  param="tools", code="unsupported_parameter")
    fmt = response_guide(req.response_format)
    forced = tool_guide(plan)
    if fmt is not None and forced is not None:
        raise bad(f"response_format cannot be combined with tool_choice '{plan.mode}'",
                  "response_format")
    return plan, forced or fmt

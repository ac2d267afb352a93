"""Chat's own parameter refusals on top of the shared sampling checks."""

from __future__ import annotations

from gateway.chat.protocol import ChatCompletionRequest
from gateway.registry import ModelEntry
from gateway.sampling import SamplingParams, bad, check_sampling


def check_params(req: ChatCompletionRequest, entry: ModelEntry) -> SamplingParams:
    """Validate a chat request's parameters.

    Raises:
        InvalidRequestError: with ``param`` naming the offending field.
    """
    if req.n not in (None, 1):
        raise bad("Only n=1 is supported", "n")
    if req.logprobs:
        raise bad("logprobs are not supported by this server", "logprobs")
    if req.tools:
        raise bad("tools are not supported by this server", "tools")
    if req.response_format and req.response_format.get("type", "text") != "text":
        raise bad("only response_format type 'text' is supported", "response_format")
    return check_sampling(req, entry)

"""The OpenAI Responses API (POST /v1/responses), built on the chat machinery."""

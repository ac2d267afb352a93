"""Small Triton test models (echo, slow, failing, hanging) on the chat tensor contract."""

"""Reading optional request tensors in our Python-backend models (shared: build_engines copies it)."""

import triton_python_backend_utils as pb_utils


class BadRequest(ValueError):
    """A request the model refuses; becomes a Triton error response."""


def optional(request, name, default=None):
    """The first element of an optional input tensor, or ``default``."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    array = tensor.as_numpy()
    if array.size == 0:
        return default
    return array.reshape(-1)[0]


def strings(request, name):
    """The non-empty strings of an optional STRING tensor."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return []
    out = []
    for item in tensor.as_numpy().reshape(-1):
        text = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        if text:
            out.append(text)
    return out

"""GPU targets: TensorRT-LLM engines (or the LLM API model) and their Triton model repository."""

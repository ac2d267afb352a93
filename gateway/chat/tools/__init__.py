"""Tool calls: request checks and guides (``definitions``), per-family output parsers (``parsers``)."""

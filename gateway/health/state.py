"""The gateway's own lifecycle: starting, serving, draining (readiness follows it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["starting", "serving", "draining"]


@dataclass(slots=True)
class Lifecycle:
    state: State = "starting"

    @property
    def serving(self) -> bool:
        return self.state == "serving"

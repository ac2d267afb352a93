"""Admin API wire structs: the key fields an admin may set."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec

# Bounds the database columns can hold (32-bit integers), checked when the body is decoded.
Limit = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
TEN_YEARS_S = 10 * 365 * 86400.0


class KeyFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A key's settable fields (create and update); unset fields are left alone."""

    name: Text | msgspec.UnsetType = msgspec.UNSET
    owner: Text | msgspec.UnsetType = msgspec.UNSET
    admin: bool | msgspec.UnsetType = msgspec.UNSET
    allowed_models: Annotated[list[Text], msgspec.Meta(max_length=1000)] | None | msgspec.UnsetType = msgspec.UNSET
    rpm: Limit | None | msgspec.UnsetType = msgspec.UNSET
    tpm: Limit | None | msgspec.UnsetType = msgspec.UNSET
    max_concurrent: Limit | None | msgspec.UnsetType = msgspec.UNSET
    expires_at: Annotated[float, msgspec.Meta(ge=0, le=1e11)] | None | msgspec.UnsetType = msgspec.UNSET
    expires_in_s: Annotated[float, msgspec.Meta(gt=0, le=TEN_YEARS_S)] | msgspec.UnsetType = msgspec.UNSET

    def values(self) -> dict[str, object]:
        out = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not msgspec.UNSET}
        if "expires_in_s" in out:
            out["expires_at"] = time.time() + float(out.pop("expires_in_s"))
        if out.get("allowed_models") is not None:
            out["allowed_models"] = tuple(out["allowed_models"])
        return out

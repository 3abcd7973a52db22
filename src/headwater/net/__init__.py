"""Outbound network access for user-given URLs. `safe_http` is the only way out."""

from headwater.net.address_policy import AddressPolicy, strict_address_policy
from headwater.net.safe_http import (
    EgressFailed,
    EgressRefused,
    EgressTooLarge,
    SafeHttpClient,
    SafeResponse,
)

__all__ = [
    "AddressPolicy",
    "EgressFailed",
    "EgressRefused",
    "EgressTooLarge",
    "SafeHttpClient",
    "SafeResponse",
    "strict_address_policy",
]

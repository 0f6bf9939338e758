"""A component ready for work: its decrypted settings and its two clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bucketjobs.storage.components import Component
from bucketjobs.storage.http import S3Http
from bucketjobs.storage.lister import S3Lister
from bucketjobs.storage.listing import LEXICOGRAPHIC


@dataclass(frozen=True)
class Store:
    """`http` is the fast signed-request path (listing, object operations); `client` is
    aiobotocore, for the rare calls where a full SDK is worth its cost."""

    component: Component
    http: S3Http
    client: Any

    @property
    def id(self) -> int:
        return self.component.id

    @property
    def lister(self) -> S3Lister:
        return S3Lister(self.http)

    @property
    def order(self) -> str:
        """How the store orders listings (storage/listing.py)."""
        return str(self.component.config.get("listingOrder") or LEXICOGRAPHIC)

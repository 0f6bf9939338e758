"""Storage components: where a job's bucket lives. Credentials are stored encrypted."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.db.models import storage_components
from bucketjobs.storage.endpoint import Endpoint, tls_context

ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"  # a component's states


@dataclass(frozen=True)
class Component:
    """A decrypted component, ready to open a client with. Never serialise it whole."""

    id: int
    storage_type: str
    config: dict[str, Any]
    access_key: str
    secret_key: str

    @property
    def location(self) -> Endpoint:
        scheme = str(self.config.get("uriScheme", "http"))
        return Endpoint(scheme, str(self.config["host"]).strip("[]"), int(self.config["port"]))

    @property
    def endpoint(self) -> str:
        """The endpoint URL, without the scheme's default port (storage/endpoint.py)."""
        return self.location.url

    @property
    def tls(self) -> ssl.SSLContext | None:
        """How connections to an `https` component verify it (always; with its own CA when
        it has `caCertificate`)."""
        return tls_context(self.config.get("caCertificate")) if self.location.tls else None

    @property
    def region(self) -> str:
        return str(self.config.get("region") or "us-east-1")


def detect_listing_order(endpoint: str, ca_pem: str | None = None) -> str:
    """`hierarchical` for stores known to list in directory-tree order (SeaweedFS, seen by
    its Server header), else S3's `lexicographic`. See storage/listing.py. The probe
    verifies TLS like every other connection to the component."""
    verify: ssl.SSLContext | bool = tls_context(ca_pem) if Endpoint.parse(endpoint).tls else False
    try:
        server = httpx.get(endpoint, timeout=5, verify=verify).headers.get("server", "")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):  # ValueError: IDNA refusals
        server = ""
    return "hierarchical" if server.lower().startswith("seaweedfs") else "lexicographic"


def endpoint_location(endpoint: str) -> dict[str, Any]:
    """`host`, `port` (defaulted by scheme) and `uriScheme` of an endpoint URL."""
    location = Endpoint.parse(endpoint)
    return {"host": location.host, "port": location.port, "uriScheme": location.scheme}


def endpoint_config(endpoint: str, region: str, label: str) -> dict[str, Any]:
    """The non-secret `storageComponentConfig` for an endpoint URL."""
    return {
        "label": label,
        **endpoint_location(endpoint),
        "region": region,
        "authType": "V4",
        "usePathStyleAlways": True,
        "listingOrder": detect_listing_order(endpoint),
    }


async def set_primary(
    conn: AsyncConnection,
    fernet: Fernet,
    storage_type: str,
    config: dict[str, Any],
    access_key: str,
    secret_key: str,
) -> int:
    """Make this endpoint the primary component, reusing the row if the endpoint is known."""
    enc_access = fernet.encrypt(access_key.encode()).decode()
    enc_secret = fernet.encrypt(secret_key.encode()).decode()
    rows = (await conn.execute(select(storage_components))).fetchall()
    same = [
        r for r in rows if (r.config["host"], r.config["port"]) == (config["host"], config["port"])
    ]
    await conn.execute(update(storage_components).values(is_primary=False))
    values = {
        "storage_type": storage_type,
        "config": config,
        "access_key_enc": enc_access,
        "secret_key_enc": enc_secret,
        "is_primary": True,
        "state": ACTIVE,
    }
    if same:
        await conn.execute(
            update(storage_components).where(storage_components.c.id == same[0].id).values(values)
        )
        return int(same[0].id)
    new_id = await conn.scalar(
        storage_components.insert().values(values).returning(storage_components.c.id)
    )
    return int(new_id)


def decrypt(row: Any, fernet: Fernet) -> Component:
    """A `storage_components` row with its credentials decrypted."""
    return Component(
        id=row.id,
        storage_type=row.storage_type,
        config=dict(row.config),
        access_key=fernet.decrypt(row.access_key_enc.encode()).decode(),
        secret_key=fernet.decrypt(row.secret_key_enc.encode()).decode(),
    )


async def load_component(conn: AsyncConnection, fernet: Fernet, component_id: int) -> Component:
    """The component `component_id`; LookupError if there is none."""
    row = (
        await conn.execute(
            select(storage_components).where(storage_components.c.id == component_id)
        )
    ).first()
    if row is None:
        raise LookupError(f"storage component {component_id} does not exist")
    return decrypt(row, fernet)


async def load_primary(conn: AsyncConnection, fernet: Fernet) -> Component | None:
    row = (
        await conn.execute(select(storage_components).where(storage_components.c.is_primary))
    ).first()
    return decrypt(row, fernet) if row else None

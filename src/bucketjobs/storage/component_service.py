"""Storage components as an operator manages them: create, list, update, activate, test.

The routes in api/components.py parse and answer; every rule and every statement is here
(as jobs/service.py is for jobs). Credentials are write-only: encrypted with the
installation's Fernet key before they reach the database, never returned. Exactly one
component is primary; marking another primary moves the mark in the same transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bucketjobs.db.models import storage_components
from bucketjobs.storage.components import ACTIVE, INACTIVE, decrypt, detect_listing_order
from bucketjobs.storage.endpoint import DEFAULT_PORTS, Endpoint, tls_context
from bucketjobs.storage.errors import StorageError
from bucketjobs.storage.http import S3Http

TEST_TIMEOUT = 30.0  # seconds each request of a component test may take


class ComponentNotFound(LookupError):
    def __init__(self, component_id: int) -> None:
        super().__init__(f"storage component {component_id} not found")


class ComponentRuleError(ValueError):
    """A change the component rules refuse; the message says which rule."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class ProbeResult:
    """What `test` found: verified, or the first failure."""

    verified: bool
    http_status: int | None = 200
    error_code: str | None = None
    error_message: str | None = None


async def stored_config(config: dict[str, Any]) -> dict[str, Any]:
    """The non-secret config as stored: the port defaulted by scheme, a CA checked, and the
    store's listing order probed (over verified TLS)."""
    scheme = config.get("uriScheme", "https")
    ca_pem = config.get("caCertificate")
    if ca_pem is not None:
        if scheme != "https":
            raise ComponentRuleError("storageComponentConfig.caCertificate needs uriScheme https")
        try:
            tls_context(ca_pem)
        except ValueError as exc:
            raise ComponentRuleError(f"storageComponentConfig.caCertificate is {exc}") from None
    stored = dict(config)
    stored.setdefault("port", DEFAULT_PORTS[scheme])
    endpoint = Endpoint(scheme, str(stored["host"]).strip("[]"), int(stored["port"])).url
    stored["listingOrder"] = await asyncio.to_thread(detect_listing_order, endpoint, ca_pem)
    return stored


class ComponentService:
    def __init__(self, db: AsyncEngine, fernet: Fernet) -> None:
        self.db = db
        self.fernet = fernet

    def _encrypt(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode()).decode()

    async def create(
        self, storage_type: str, config: dict[str, Any], credentials: Credentials, primary: bool
    ) -> Any:
        stored = await stored_config(config)
        async with self.db.begin() as conn:
            if primary:
                await conn.execute(update(storage_components).values(is_primary=False))
            statement = (
                storage_components.insert()
                .values(
                    storage_type=storage_type,
                    config=stored,
                    access_key_enc=self._encrypt(credentials.access_key),
                    secret_key_enc=self._encrypt(credentials.secret_key),
                    is_primary=primary,
                    state=ACTIVE,
                )
                .returning(storage_components)
            )
            return (await conn.execute(statement)).one()

    async def list(self) -> list[Any]:
        async with self.db.connect() as conn:
            query = select(storage_components).order_by(storage_components.c.id)
            return list(await conn.execute(query))

    async def update(
        self,
        component_id: int,
        config: dict[str, Any],
        *,
        storage_type: str | None,
        access_key: str | None,
        secret_key: str | None,
        primary: bool | None,
    ) -> Any:
        """Replace the config; credentials left out (None) are kept."""
        stored = await stored_config(config)
        async with self.db.begin() as conn:
            current = await _row(conn, component_id)
            if primary is False and current.is_primary:
                raise ComponentRuleError(
                    "mark another component primary instead: one must be primary"
                )
            if primary and current.state != ACTIVE:
                raise ComponentRuleError(
                    f"storage component {component_id} is INACTIVE and cannot be primary"
                )
            values: dict[str, Any] = {"config": stored}
            if storage_type is not None:
                values["storage_type"] = storage_type
            if access_key is not None:
                values["access_key_enc"] = self._encrypt(access_key)
            if secret_key is not None:
                values["secret_key_enc"] = self._encrypt(secret_key)
            if primary:
                await conn.execute(update(storage_components).values(is_primary=False))
                values["is_primary"] = True
            return await _update(conn, component_id, values)

    async def set_state(self, component_id: int, state: str) -> Any:
        async with self.db.begin() as conn:
            current = await _row(conn, component_id)
            if state == INACTIVE and current.is_primary:
                raise ComponentRuleError("the primary component cannot be made INACTIVE")
            return await _update(conn, component_id, {"state": state})

    async def get(self, component_id: int) -> Any:
        async with self.db.connect() as conn:
            return await _row(conn, component_id)

    async def test(self, row: Any) -> ProbeResult:
        """Real requests to the component `row` (from `get`): list the buckets (endpoint
        and credentials), then HEAD the configured bucket if there is one. The first
        failure is the answer."""
        component = decrypt(row, self.fernet)
        http = S3Http(component, 2)
        try:
            await asyncio.wait_for(http.request("GET", ""), TEST_TIMEOUT)
            if component.config.get("bucket"):
                bucket = component.config["bucket"]
                await asyncio.wait_for(http.request("HEAD", bucket), TEST_TIMEOUT)
        except StorageError as exc:
            return ProbeResult(False, exc.http_status, exc.code, exc.message)
        except TimeoutError:
            return ProbeResult(False, None, "Timeout", f"no answer within {TEST_TIMEOUT:g} s")
        finally:
            await http.close()
        return ProbeResult(True)


async def _row(conn: AsyncConnection, component_id: int) -> Any:
    query = select(storage_components).where(storage_components.c.id == component_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise ComponentNotFound(component_id)
    return row


async def _update(conn: AsyncConnection, component_id: int, values: dict[str, Any]) -> Any:
    table = storage_components
    statement = update(table).where(table.c.id == component_id).values(values).returning(table)
    return (await conn.execute(statement)).one()

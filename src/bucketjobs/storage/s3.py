"""Opening S3 clients for a component (aiobotocore; retries are ours, see retry.py)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bucketjobs.storage.components import Component
from bucketjobs.storage.endpoint import ca_bundle_file


def open_client(
    component: Component, max_connections: int = 64
) -> AbstractAsyncContextManager[Any]:
    """An async context manager yielding an S3 client bound to the component."""
    config = AioConfig(
        max_pool_connections=int(component.config.get("maxConnections") or max_connections),
        connect_timeout=float(component.config.get("connectionTimeout") or 10),
        read_timeout=float(component.config.get("socketTimeout") or 60),
        retries={"max_attempts": 1, "mode": "standard"},
        s3={
            "addressing_style": "path"
            if component.config.get("usePathStyleAlways", True)
            else "auto"
        },
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    ca_pem = component.config.get("caCertificate")
    return get_session().create_client(
        "s3",
        endpoint_url=component.endpoint,
        region_name=component.region,
        aws_access_key_id=component.access_key,
        aws_secret_access_key=component.secret_key,
        config=config,
        # Always verified; against the component's own CA when it has one.
        verify=ca_bundle_file(ca_pem) if ca_pem and component.location.tls else True,
    )

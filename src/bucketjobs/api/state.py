"""Everything a request handler needs, built once per API process."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.auth.csrf import CsrfProtector
from bucketjobs.auth.live_sessions import LiveSessions
from bucketjobs.auth.logins import LoginChecker
from bucketjobs.auth.tokens import TokenIssuer
from bucketjobs.clock import Clock
from bucketjobs.jobs.service import JobService
from bucketjobs.notify.service import NotificationService
from bucketjobs.storage.component_service import ComponentService


@dataclass
class ApiState:
    db: AsyncEngine
    reads: AsyncEngine  # the pool for one-statement reads (db/session.create_read_engine)
    clock: Clock
    tokens: TokenIssuer
    csrf: CsrfProtector
    jobs: JobService
    components: ComponentService
    notifications: NotificationService
    fernet: Fernet
    serial: str
    logins: LoginChecker
    live_sessions: LiveSessions
    realm: str = "vsp-object"
    client_ids: frozenset[str] = frozenset({"vsp-object-external-client", "admin-cli"})
    secure_cookies: bool = False

"""Who is calling: the authenticated user, the permissions their role grants, and whether
their role reaches every bucket (otherwise their grants decide, `auth/access.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    permissions: frozenset[str]
    all_buckets: bool = False

    def can(self, permission: str) -> bool:
        return permission in self.permissions

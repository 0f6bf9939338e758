"""Who is calling: the authenticated user and the permissions their role grants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    user_id: int
    username: str
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

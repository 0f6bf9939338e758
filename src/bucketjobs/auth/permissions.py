"""Permission strings and the built-in roles that grant them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

JOBS_CREATE = "mapi:jobs:create"
JOBS_LIST = "mapi:jobs:list"
JOBS_STATUS = "mapi:jobs:status"
JOBS_CANCEL = "mapi:jobs:cancel"
JOBS_ADMIN_LIST = "mapi:jobs:admin_list"
JOBS_ADMIN_CANCEL = "mapi:jobs:admin_cancel"
STORAGE_ADMIN = "mapi:storage:admin"
USERS_ADMIN = "mapi:users:admin"

_OWN_JOBS = (JOBS_CREATE, JOBS_LIST, JOBS_STATUS, JOBS_CANCEL)


class Role(StrEnum):
    """The roles a user can hold (`bucketjobs users add --role`)."""

    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"
    USER = "user"


ROLES: dict[str, tuple[str, ...]] = {
    Role.ADMINISTRATOR: (
        *_OWN_JOBS,
        JOBS_ADMIN_LIST,
        JOBS_ADMIN_CANCEL,
        STORAGE_ADMIN,
        USERS_ADMIN,
    ),
    Role.OPERATOR: (*_OWN_JOBS, JOBS_ADMIN_LIST, JOBS_ADMIN_CANCEL),
    Role.USER: _OWN_JOBS,
}


def permissions_for(roles: Iterable[str]) -> list[str]:
    """The union of the roles' permissions, in a stable order; unknown roles grant nothing."""
    granted: dict[str, None] = {}
    for role in roles:
        for permission in ROLES.get(role, ()):
            granted[permission] = None
    return list(granted)

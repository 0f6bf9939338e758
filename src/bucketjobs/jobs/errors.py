"""Domain errors carrying the MAPI error code; the API turns them into the error body."""

from __future__ import annotations


class JobError(Exception):
    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(JobError):
    pass


class NoSuchBucket(JobError):
    code = "NO_SUCH_BUCKET"


class JobAlreadyActive(JobError):
    code = "JOB_ALREADY_ACTIVE"


class JobNotCancellable(JobError):
    code = "JOB_NOT_CANCELLABLE"


class JobNotFound(JobError):
    status = 404
    code = "JOB_NOT_FOUND"


class Forbidden(JobError):
    status = 403
    code = "FORBIDDEN"

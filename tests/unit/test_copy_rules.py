"""Pure rules of the copy path: part sizes within S3's limits, error documents."""

from __future__ import annotations

import pytest

from bucketjobs.storage.copy import (
    COPY_PART_SIZE,
    MAX_PART,
    MAX_PARTS,
    STREAM_PART_SIZE,
    GiB,
    MiB,
    part_size_for,
)
from bucketjobs.storage.http import _is_error_document

TiB = 1024 * GiB


@pytest.mark.parametrize("preferred", [STREAM_PART_SIZE, COPY_PART_SIZE])
@pytest.mark.parametrize("size", [0, 1, 16 * MiB, 78 * GiB, 79 * GiB, 1 * TiB, 5 * TiB])
def test_every_object_up_to_5_tib_fits_in_10000_parts(size, preferred):
    part = part_size_for(size, preferred)
    assert part >= preferred and part <= MAX_PART and part % MiB == 0
    assert -(-size // part) <= MAX_PARTS
    if size <= preferred * MAX_PARTS:
        assert part == preferred  # small objects keep the size that was measured fastest


def test_fixed_8_mib_parts_would_not_fit_above_78_gib():
    """The bug: 8 MiB x 10,000 parts is 78.1 GiB."""
    assert -(-(79 * GiB) // STREAM_PART_SIZE) > MAX_PARTS
    assert part_size_for(79 * GiB, STREAM_PART_SIZE) == 9 * MiB


@pytest.mark.parametrize(
    ("body", "is_error"),
    [
        (b"<Error><Code>InternalError</Code></Error>", True),
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code></Error>', True),
        (b"  \n<Error><Code>x</Code></Error>", True),
        (b"<CopyObjectResult><ETag>x</ETag></CopyObjectResult>", False),
        (b'<?xml version="1.0"?><CompleteMultipartUploadResult/>', False),
        (b"<doc>" + b"<Error>" + b"</doc>", False),  # an error element inside a document
        (b"", False),
    ],
)
def test_error_document_is_recognised_by_its_root(body, is_error):
    assert _is_error_document(body) is is_error

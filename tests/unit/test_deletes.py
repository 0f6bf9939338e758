"""DeleteObjects documents and answers (storage/deletes.py), pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bucketjobs.storage.deletes import Target, delete_document, parse_errors


def test_the_document_carries_every_key_and_version_exactly():
    targets = [Target("a&b<c>d\"e'f"), Target("x/ü 日本", "v1"), Target("cr\rhere\tand\nnl")]
    root = ET.fromstring(delete_document(targets))
    assert root.findtext("Quiet") == "true"
    found = [(o.findtext("Key"), o.findtext("VersionId")) for o in root.iter("Object")]
    assert found == [(t.key, t.version_id) for t in targets]


def test_per_key_errors_are_read_whatever_the_namespace_and_escapes():
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Error><Key>a&amp;b</Key><VersionId>v9</VersionId><Code>AccessDenied</Code>"
        b"<Message>Access &lt;denied&gt;</Message></Error>"
        b"<Error><Key>plain</Key><Code>InternalError</Code><Message>try again</Message></Error>"
        b"</DeleteResult>"
    )
    assert parse_errors(body) == [
        (Target("a&b", "v9"), "AccessDenied", "Access <denied>"),
        (Target("plain"), "InternalError", "try again"),
    ]
    assert parse_errors(b"<DeleteResult></DeleteResult>") == []

"""The listing page scanner agrees with a real XML parser, escapes and markers included."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from bucketjobs.storage.lister import parse_page

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
KEYS = ["plain", "a&b <c> \"q\" 'a'", "ü/ö/日本", "sp ace+%2F", "dir/", "x" * 900]


def _v2_body() -> bytes:
    items = "".join(
        f"<Contents><Key>{escape(k)}</Key><LastModified>2026-11-29T19:03:25.123Z</LastModified>"
        f"<ETag>&#34;etag{n}&#34;</ETag><Size>{n * 7}</Size><Owner><ID>o</ID></Owner>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
        for n, k in enumerate(KEYS)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/'
        f'doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>{len(KEYS)}</KeyCount>'
        f"<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>{items}"
        "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>"
    ).encode()


def _versions_body() -> bytes:
    items = ""
    for n, k in enumerate(KEYS):
        items += (
            f"<DeleteMarker><Key>{escape(k)}</Key><VersionId>dm{n}</VersionId>"
            f"<IsLatest>true</IsLatest><LastModified>2026-11-29T19:03:25Z</LastModified>"
            f"<Owner><ID>o</ID></Owner></DeleteMarker>"
            f"<Version><Key>{escape(k)}</Key><VersionId>v{n}</VersionId><IsLatest>false</IsLatest>"
            f'<LastModified>2026-11-28T00:00:00Z</LastModified><ETag>"e{n}"</ETag>'
            f"<Size>{n}</Size><StorageClass>STANDARD</StorageClass></Version>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult xmlns="http://s3.amazonaws.com/'
        'doc/2006-03-01/"><Name>b</Name><KeyMarker></KeyMarker><NextKeyMarker>a&amp;b</NextKeyMarker>'
        "<NextVersionIdMarker>v9</NextVersionIdMarker><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>true</IsTruncated>{items}</ListVersionsResult>"
    ).encode()


def _reference(body: bytes) -> list[tuple[str, str | None, bool, int, str, bool]]:
    """What an XML parser reads: (key, versionId, isLatest, size, etag, deleteMarker)."""
    out = []
    for element in ET.fromstring(body):
        tag = element.tag.removeprefix(NS)
        if tag not in ("Contents", "Version", "DeleteMarker"):
            continue
        text = {child.tag.removeprefix(NS): child.text or "" for child in element}
        out.append((
            text["Key"], text.get("VersionId"), text.get("IsLatest", "true") == "true",
            int(text.get("Size", 0)), text.get("ETag", "").strip('"'), tag == "DeleteMarker",
        ))  # fmt: skip
    return out


def _ours(page, versions: bool):
    return [
        (e.key, e.version_id if versions else None, e.is_latest, e.size, e.etag, e.delete_marker)
        for e in page.entries
    ]


def test_v2_page_matches_an_xml_parser():
    body = _v2_body()
    page = parse_page(body, versions=False)
    expected = [
        (k, None, latest, size, etag, dm) for k, _, latest, size, etag, dm in _reference(body)
    ]
    assert _ours(page, False) == expected
    assert [e.key for e in page.entries] == KEYS
    assert page.truncated and page.next_key_marker == KEYS[-1]
    assert page.entries[0].last_modified == dt.datetime(
        2026, 11, 29, 19, 3, 25, 123000, tzinfo=dt.UTC
    )


def test_versions_page_matches_an_xml_parser():
    body = _versions_body()
    page = parse_page(body, versions=True)
    assert _ours(page, True) == _reference(body)
    assert page.next_key_marker == "a&b" and page.next_version_marker == "v9"
    assert sum(e.delete_marker for e in page.entries) == len(KEYS)


def test_last_page():
    page = parse_page(
        b'<ListBucketResult xmlns="x"><IsTruncated>false</IsTruncated></ListBucketResult>',
        versions=False,
    )
    assert page.entries == [] and not page.truncated and page.next_key_marker is None


def test_delimiter_page_keeps_common_prefixes_and_token():
    body = (
        b'<ListBucketResult xmlns="x"><Name>b</Name><Prefix>top/</Prefix>'
        b"<NextContinuationToken>tok&amp;1</NextContinuationToken><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>top/a.txt</Key><Size>3</Size><ETag>&#34;e&#34;</ETag></Contents>"
        b"<CommonPrefixes><Prefix>top/d&amp;1/</Prefix></CommonPrefixes>"
        b"<CommonPrefixes><Prefix>top/d2/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    page = parse_page(body, versions=False)
    assert [e.key for e in page.entries] == ["top/a.txt"]
    assert page.entries[0].size == 3
    assert page.prefixes == ["top/d&1/", "top/d2/"]
    assert page.truncated and page.token == "tok&1"
    assert parse_page(_v2_body(), versions=False).prefixes == ["p/"]
    assert parse_page(_versions_body(), versions=True).prefixes == []

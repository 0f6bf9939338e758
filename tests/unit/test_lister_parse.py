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


def _layout(order: list[str], extra: str = "") -> str:
    fields = {
        "Key": "<Key>{key}</Key>",
        "ETag": "<ETag>&#34;e{n}&#34;</ETag>",
        "Size": "<Size>{size}</Size>",
        "LastModified": "<LastModified>2026-11-29T19:03:25Z</LastModified>",
        "StorageClass": "<StorageClass>STANDARD</StorageClass>",
        "Owner": "<Owner><ID>o</ID><DisplayName>d</DisplayName></Owner>",
    }
    return "<Contents>" + "".join(fields[f] for f in order) + extra + "</Contents>"


def _page(blocks: list[str], tail: str = "") -> bytes:
    return (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
        f"<IsTruncated>true</IsTruncated>{''.join(blocks)}{tail}"
        "<NextContinuationToken>t&amp;1</NextContinuationToken></ListBucketResult>"
    ).encode()


SEAWEED = ["Key", "ETag", "Size", "StorageClass", "LastModified"]
AWS = ["Key", "LastModified", "ETag", "Size", "Owner", "StorageClass"]


def test_fast_v2_scan_gives_what_the_general_scan_gives(monkeypatch):
    """The fast scan (a pattern learned from the page's first block) against the general
    one, same pages, same answers: each store's layout, escaped keys, a page whose blocks
    differ (then the fast scan must step aside), common prefixes, an empty page."""
    from bucketjobs.storage import lister

    def blocks(layout: list[str], extra_at: int | None = None) -> list[str]:
        return [
            _layout(layout, "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>" if n == extra_at else "")
            .replace("{key}", escape(k))
            .replace("{n}", str(n))
            .replace("{size}", str(n * 3))
            for n, k in enumerate(KEYS * 3)
        ]

    pages = {
        "seaweedfs": _page(blocks(SEAWEED)),
        "aws": _page(blocks(AWS)),
        "one block differs": _page(blocks(AWS, extra_at=4)),
        "common prefixes": _page(
            blocks(SEAWEED), "<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>"
        ),
        "no size": _page([b.replace("<Size>0</Size>", "") for b in blocks(SEAWEED)]),
        "etag quotes": _page(
            [  # quoted, escaped two ways, or bare; multipart ETags end in -N
                b.replace("&#34;</ETag>", "-3&#34;</ETag>" if n % 2 else "&#34;</ETag>").replace(
                    "&#34;", ("&#34;", "&quot;", '"', "")[n % 4]
                )
                for n, b in enumerate(blocks(AWS))
            ]
        ),
        "an etag of other text": _page(
            [b.replace("&#34;e5", "&#34;e&amp;5") for b in blocks(SEAWEED)]
        ),
        "empty": _page([]),
    }
    used = []
    real_fast = lister._fast_v2_entries
    for name, body in pages.items():
        fast = parse_page(body, versions=False)
        used.append((name, real_fast(body) is not None))
        monkeypatch.setattr(lister, "_fast_v2_entries", lambda body: None)
        general = parse_page(body, versions=False)
        monkeypatch.setattr(lister, "_fast_v2_entries", real_fast)
        assert fast == general, name
    assert dict(used) == {
        "seaweedfs": True, "aws": True, "one block differs": False,
        "common prefixes": False, "no size": False, "empty": False, "etag quotes": True,
        "an etag of other text": False,
    }  # fmt: skip

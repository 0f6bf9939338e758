"""Object tags: reading them (GetObjectTagging) for copies and for lifecycle tag filters."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bucketjobs.storage.http import S3Http


def parse_tags(body: bytes) -> list[tuple[str, str]]:
    """A GetObjectTagging answer → [(key, value)], whatever its XML namespace."""
    tags: list[tuple[str, str]] = []
    for element in ET.fromstring(body).iter():
        if element.tag.rsplit("}", 1)[-1] == "Tag":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
            tags.append((fields.get("Key", ""), fields.get("Value", "")))
    return tags


async def read_tags(
    http: S3Http, bucket: str, key: str, version_id: str | None = None
) -> dict[str, str] | None:
    """The tags of `key` (of one version of it); None when it is gone."""
    query = {"tagging": ""}
    if version_id is not None:
        query["versionId"] = version_id
    status, _, body = await http.request("GET", bucket, key, query=query, ok=(200, 404))
    return dict(parse_tags(body)) if status == 200 else None

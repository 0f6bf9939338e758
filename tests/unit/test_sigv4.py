"""Our SigV4 signer must produce exactly botocore's signature for the same request."""

from __future__ import annotations

import datetime as dt
import hashlib
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bucketjobs.storage.endpoint import Endpoint
from bucketjobs.storage.http import encode_key, encode_query
from bucketjobs.storage.sigv4 import SigV4Signer

NOW = dt.datetime(2026, 11, 29, 12, 34, 56, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("method", "key", "query", "headers"),
    [
        ("GET", None, {"list-type": "2", "prefix": "a b/ü", "start-after": "x+y%z"}, {}),
        ("PUT", "dir/ünï code/a+b=c%2F.txt", {}, {"x-amz-copy-source": "src/k%20ey"}),
        ("PUT", "k", {"partNumber": "3", "uploadId": "abc/=="}, {"content-type": "text/plain"}),
        ("HEAD", "with space", {}, {"x-amz-meta-owner": " team "}),
        ("PUT", "ws", {}, {"x-amz-meta-note": "a  b\t c   d", "content-type": "text/plain;  x=1"}),
        ("PUT", "utf8", {}, {"x-amz-meta-name": "Grüße 東京 ✓", "x-amz-meta-e": "é"}),
    ],
)
@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8333",
        "http://s3.example.com:80",
        "https://s3.example.com:443",
        "https://[::1]:9443",
        "https://s3.example.com:8443",
    ],
)
def test_signature_matches_botocore(method, key, query, headers, endpoint):
    path = "/bucket" + (f"/{encode_key(key)}" if key is not None else "")
    encoded = encode_query(query)
    # botocore hashes the (empty) payload where we send UNSIGNED-PAYLOAD: give both the hash.
    payload = {"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
    location = Endpoint.parse(endpoint)
    ours = SigV4Signer("AKID", "secret/key+", "eu-west-1", now=lambda: NOW).sign(
        method, location.host_header, path, encoded, {**headers, **payload}
    )

    # botocore is given the URL as an operator writes it, default port and all.
    url = f"{endpoint}{path}" + (f"?{encoded}" if encoded else "")
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(Credentials("AKID", "secret/key+"), "s3", "eu-west-1").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_signing_key_is_derived_once_a_day():
    days = iter([NOW, NOW, NOW + dt.timedelta(days=1)])
    signer = SigV4Signer("AKID", "secret", "us-east-1", now=lambda: next(days))
    first = signer.sign("GET", "h", "/b", "", {})["authorization"]
    assert signer.sign("GET", "h", "/b", "", {})["authorization"] == first
    assert "20261130/us-east-1" in signer.sign("GET", "h", "/b", "", {})["authorization"]


@pytest.mark.parametrize(
    ("url", "host_header", "port"),
    [
        ("http://s3.example.com", "s3.example.com", 80),
        ("http://s3.example.com:80", "s3.example.com", 80),
        ("https://s3.example.com:443/", "s3.example.com", 443),
        ("https://s3.example.com:80", "s3.example.com:80", 80),
        ("http://127.0.0.1:8333", "127.0.0.1:8333", 8333),
        ("https://[2001:db8::1]:443", "[2001:db8::1]", 443),
        ("http://[::1]:9000", "[::1]:9000", 9000),
    ],
)
def test_endpoint_host_header_drops_only_the_default_port(url, host_header, port):
    location = Endpoint.parse(url)
    assert (location.host_header, location.port) == (host_header, port)
    assert Endpoint.parse(location.url) == location

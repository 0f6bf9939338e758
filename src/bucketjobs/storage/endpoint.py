"""Where a component is reached: scheme, host and port, and how TLS to it is verified.

S3 endpoints live on default ports in the field (AWS on 443, appliances on 80 or 443), and
there the port is *not* part of the Host header: AWS, botocore and SeaweedFS sign and check
`host`, not `host:443`. One object holds that rule, so the URL we connect to, the Host
header we send and the host we sign are always the same string.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str  # http | https
    host: str  # a name, an IPv4 address, or an IPv6 address without brackets
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """`scheme://host[:port]` (IPv6 in brackets); the port defaults by scheme."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in DEFAULT_PORTS:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        location = rest.split("/", 1)[0]
        if location.startswith("["):
            host, _, tail = location[1:].partition("]")
            port = tail.removeprefix(":")
        else:
            host, _, port = location.partition(":")
        if not host:
            raise ValueError(f"{url!r} names no host")
        return cls(scheme, host, int(port) if port else DEFAULT_PORTS[scheme])

    @property
    def host_header(self) -> str:
        """The Host header (and the signed host): the port only when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@lru_cache(maxsize=64)
def tls_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """A verifying client TLS context: the system's CAs, or only `ca_pem` when given
    (a component with a private CA). ValueError if `ca_pem` holds no usable certificate."""
    try:
        return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    except ssl.SSLError as exc:
        raise ValueError(f"not a PEM CA certificate: {exc.reason or exc}") from exc
    except TypeError:  # text beyond ASCII: the ssl module refuses it before parsing
        raise ValueError("not a PEM CA certificate: PEM is ASCII text") from None


_bundles: Path | None = None


def ca_bundle_file(ca_pem: str) -> str:
    """`ca_pem` as a file, for clients that take a CA bundle by path only (aiobotocore
    ignores an ssl context in this version). Written once per process into a directory of
    its own (0700: no other account can swap the CA in), removed when the process exits."""
    global _bundles
    if _bundles is None:
        _bundles = Path(tempfile.mkdtemp(prefix="bucketjobs-ca-"))
        atexit.register(shutil.rmtree, _bundles, True)
    path = _bundles / (hashlib.sha256(ca_pem.encode()).hexdigest()[:32] + ".pem")
    if not path.exists():
        path.write_text(ca_pem)
    return str(path)

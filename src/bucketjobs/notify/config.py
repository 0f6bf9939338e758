"""Notification targets and bucket bindings as an operator writes them (SPEC §4): pure rules.

A target's `config` is checked here per type, before anything is stored; what is secret in
it (credentials inside a URL, a webhook's `authHeader`) is split off so that the service
stores it encrypted and every answer shows `"***"` in its place. Error messages name the
field and never quote a value: a rejected config may carry a password.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
)

MASK = "***"
MAX_URL = 2048


class TargetType(StrEnum):
    WEBHOOK = "WEBHOOK"
    AMQP = "AMQP"
    NATS = "NATS"
    MQTT = "MQTT"
    REDIS = "REDIS"
    KAFKA = "KAFKA"


# Why a type that SPEC §4 names is refused at create (docs/DECISIONS.md): no target ships
# whose delivery is not tested against a real broker.
UNSUPPORTED: dict[TargetType, str] = {
    TargetType.KAFKA: (
        "KAFKA targets are not supported: no Kafka-protocol broker can be installed from this"
        " project's package registries to test them against"
    ),
}

SCHEMES: dict[TargetType, tuple[str, ...]] = {
    TargetType.WEBHOOK: ("http", "https"),
    TargetType.AMQP: ("amqp", "amqps"),
    TargetType.NATS: ("nats", "tls"),
    TargetType.MQTT: ("mqtt", "mqtts"),
    TargetType.REDIS: ("redis", "rediss"),
}

# The S3 event names a binding may list (AWS's documented set, with their wildcards).
EVENT_NAMES = frozenset(
    {
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRestore:*",
        "s3:ObjectRestore:Post",
        "s3:ObjectRestore:Completed",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:ObjectAcl:Put",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
        "s3:Replication:*",
    }
)


class ConfigError(ValueError):
    """A refused target config: `field: why`, with no value quoted."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")


Text = Annotated[StrictStr, Field(min_length=1, max_length=1024)]
MAX_TARGET_ID = 2**31 - 1  # a PostgreSQL integer


def _in_range(value: str) -> str:
    if int(value) > MAX_TARGET_ID:
        raise ValueError(f"must be at most {MAX_TARGET_ID}")
    return value


# A target's id as SPEC §4 spells it: a string of digits (the row's integer key).
TargetId = Annotated[
    StrictStr,
    Field(min_length=1, max_length=10, pattern=r"^[1-9][0-9]*$"),
    AfterValidator(_in_range),
]
_NATS_SUBJECT = re.compile(r"[^\s.*>]+(?:\.[^\s.*>]+)*")


def check_url(value: str, target: TargetType) -> str:
    """`value` if it is a URL a `target` client can dial: one of its schemes, a host, a port
    in range, no fragment. The message never quotes the URL (it may hold a password)."""
    if len(value) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    if any(c in value for c in "\r\n\t ") or not value.isprintable():
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL (bad host or port)") from None
    schemes = SCHEMES[target]
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError("must name a host")
    if port == 0:
        raise ValueError("port must be 1 to 65535")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return value


def masked_url(value: str) -> str:
    """The URL with its user information (user and password) shown as `***`."""
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    host = parts.netloc.rpartition("@")[2]
    return SplitResult(parts.scheme, f"{MASK}@{host}", parts.path, parts.query, "").geturl()


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: StrictStr = Field(min_length=1)


class WebhookConfig(_Config):
    # The Authorization header's whole value (`Bearer …`, `Basic …`): a secret.
    authHeader: StrictStr | None = Field(default=None, min_length=1, max_length=8192)

    @field_validator("authHeader")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and not all(" " <= c <= "~" for c in value):
            raise ValueError("must be printable ASCII with no line breaks")
        return value


class AmqpConfig(_Config):
    exchange: StrictStr = Field(max_length=255)  # "" is the default exchange
    routingKey: StrictStr = Field(max_length=255)


class NatsConfig(_Config):
    subject: StrictStr = Field(min_length=1, max_length=1024)
    jetStream: Literal["true", "false"] = "false"

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not _NATS_SUBJECT.fullmatch(value):
            raise ValueError(
                "must be dot-separated tokens with no spaces and no wildcards (* or >)"
            )
        return value


class MqttConfig(_Config):
    topic: StrictStr = Field(min_length=1, max_length=65535)
    # At least once needs an acknowledgement: QoS 0 would lose events silently.
    qos: Literal[1, 2] = 1

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("must not contain the wildcards + or #")
        return value


class RedisConfig(_Config):
    mode: Literal["STREAM", "LIST", "PUBSUB"]
    key: Text


CONFIGS: dict[TargetType, type[_Config]] = {
    TargetType.WEBHOOK: WebhookConfig,
    TargetType.AMQP: AmqpConfig,
    TargetType.NATS: NatsConfig,
    TargetType.MQTT: MqttConfig,
    TargetType.REDIS: RedisConfig,
}


class TargetSpec(BaseModel):
    """`target/create`'s body; `config` is checked per type by `checked_config`."""

    model_config = ConfigDict(extra="ignore")
    name: StrictStr = Field(min_length=1, max_length=128)
    type: TargetType
    config: dict[str, Any]


def checked_config(target: TargetType, config: dict[str, Any]) -> dict[str, Any]:
    """The config as it will be used, with defaults filled in; ConfigError (naming the type
    or field, never a value) when `target` is refused or `config` does not fit it."""
    if target in UNSUPPORTED:
        raise ConfigError("type", UNSUPPORTED[target])
    try:
        model = CONFIGS[target].model_validate(config)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        raise ConfigError(".".join(["config", *map(str, found["loc"])]), found["msg"]) from None
    try:
        check_url(model.url, target)
    except ValueError as exc:
        raise ConfigError("config.url", str(exc)) from None
    return model.model_dump(exclude_none=True)


def secret_free(target: TargetType, config: dict[str, Any]) -> dict[str, Any]:
    """What an answer may show of a checked config: secrets as `***`."""
    shown = dict(config)
    shown["url"] = masked_url(config["url"])
    if "authHeader" in shown:
        shown["authHeader"] = MASK
    return shown


class Binding(BaseModel):
    """One target bound to a bucket: which events, and which keys (prefix and suffix)."""

    model_config = ConfigDict(extra="forbid")
    targetId: TargetId
    events: list[StrictStr] = Field(min_length=1, max_length=32)
    prefix: StrictStr = Field(default="", max_length=1024)
    suffix: StrictStr = Field(default="", max_length=1024)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        for n, name in enumerate(value):
            if name not in EVENT_NAMES:
                raise ValueError(f"events[{n}] is not an S3 event name (e.g. s3:ObjectCreated:*)")
        return list(dict.fromkeys(value))

    def wants(self, event: str) -> bool:
        """Whether this binding takes `event` (e.g. `s3:ObjectCreated:Put`)."""
        return event in self.events or event.rpartition(":")[0] + ":*" in self.events

    def selects(self, key: str) -> bool:
        """Whether this binding's key filters let `key` through."""
        return key.startswith(self.prefix) and key.endswith(self.suffix)


def check_bindings(bindings: list[Binding]) -> None:
    """ValueError if a target is bound twice to the same bucket (one binding per target
    keeps "delivered once per object and target" simple to state and to count)."""
    seen: set[str] = set()
    for n, binding in enumerate(bindings):
        if binding.targetId in seen:
            raise ValueError(f"bindings[{n}].targetId {binding.targetId} is bound twice")
        seen.add(binding.targetId)

"""Pure notification rules: key encoding in records, sequencers, URL masking, binding filters."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote_plus

import pytest

from bucketjobs.notify.config import Binding, ConfigError, TargetType, checked_config, masked_url
from bucketjobs.notify.records import Messages, encoded_key, event_record, message, sequencer


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("plain.txt", "plain.txt"),
        ("a b/c d", "a+b/c+d"),
        ("x+y", "x%2By"),
        ("é/日本", "%C3%A9/%E6%97%A5%E6%9C%AC"),
        ("q?a=1&b", "q%3Fa%3D1%26b"),
        ("100%", "100%25"),
        ("tab\there", "tab%09here"),
    ],
)
def test_keys_are_form_encoded_with_slashes_kept_and_decode_back(key, encoded):
    assert encoded_key(key) == encoded
    assert unquote_plus(encoded) == key


def test_sequencers_grow_with_time_and_have_sixteen_hex_digits():
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    later = t0 + dt.timedelta(milliseconds=1)
    assert len(sequencer(t0)) == 16 and int(sequencer(t0), 16) > 0
    assert sequencer(later) > sequencer(t0)


def test_a_record_is_the_standard_shape_with_the_marker():
    modified = dt.datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    record = event_record(bucket="b", key="a b", size=3, etag='"abc"', version_id="null",
                          modified=modified, event_name="s3:ObjectCreated:Copy", job_id=7,
                          configuration_id="c")  # fmt: skip
    assert record["eventTime"] == "2026-05-06T07:08:09.123Z"
    assert record["eventName"] == "ObjectCreated:Copy"
    assert record["s3"]["object"] == {"key": "a+b", "size": 3, "eTag": "abc",
                                      "sequencer": sequencer(modified)}  # fmt: skip
    assert record["reconciliation"] == {"jobId": 7}
    assert json.loads(message(record)) == {"Records": [record]}
    versioned = event_record(bucket="b", key="k", size=0, etag="", version_id="v1",
                             modified=modified, event_name="s3:ObjectCreated:Put", job_id=1,
                             configuration_id="c")  # fmt: skip
    assert versioned["s3"]["object"]["versionId"] == "v1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://u:p@h:5672/v", "amqp://***@h:5672/v"),
        ("redis://:pw@h/0", "redis://***@h/0"),
        ("nats://token@h", "nats://***@h"),
        ("http://h/x?y=1", "http://h/x?y=1"),
        ("https://u:p@[::1]:8443/a", "https://***@[::1]:8443/a"),
        ("http://u:p%40x@h/", "http://***@h/"),
    ],
)
def test_urls_are_shown_without_their_user_information(url, shown):
    assert masked_url(url) == shown


def test_binding_events_with_wildcards_and_key_filters():
    binding = Binding(targetId="1", events=["s3:ObjectCreated:*"], prefix="logs/", suffix=".gz")
    assert binding.wants("s3:ObjectCreated:Put") and binding.wants("s3:ObjectCreated:Copy")
    assert not binding.wants("s3:ObjectRemoved:Delete")
    assert binding.selects("logs/a.gz") and not binding.selects("logs/a.txt")
    assert not binding.selects("img/a.gz")
    exact = Binding(targetId="1", events=["s3:ObjectCreated:Post"])
    assert exact.wants("s3:ObjectCreated:Post") and not exact.wants("s3:ObjectCreated:Put")


def test_config_errors_name_the_field_and_never_the_value():
    with pytest.raises(ConfigError) as bad:
        checked_config(TargetType.AMQP, {"url": "http://u:secret-1@h/", "exchange": "",
                                         "routingKey": "r"})  # fmt: skip
    assert str(bad.value).startswith("config.url: ") and "secret-1" not in str(bad.value)
    with pytest.raises(ConfigError) as extra:
        checked_config(TargetType.REDIS, {"url": "redis://h", "mode": "LIST", "key": "k",
                                          "password": "secret-2"})  # fmt: skip
    assert "config.password" in str(extra.value) and "secret-2" not in str(extra.value)


@pytest.mark.parametrize(
    "key", ["plain", "a b/c+d", 'quote"and\\back', "é/日本 ✓", "tab\there\r\n", "%41", "@@hole@@"]
)
@pytest.mark.parametrize("version_id", [None, "null", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"])
def test_templated_messages_are_byte_for_byte_the_generic_ones(key, version_id):
    common = {"bucket": "my-bucket", "event_name": "s3:ObjectCreated:Put", "job_id": 42,
              "configuration_id": "bucketjobs-7"}  # fmt: skip
    modified = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
    for etag in ('"0123abcd"', "plain-etag", '"weird\\"tag"', ""):
        generic = message(event_record(key=key, size=12345, etag=etag, version_id=version_id,
                                       modified=modified, **common))  # fmt: skip
        assert Messages(**common).render(key, 12345, etag, version_id, modified) == generic

"""Property-based fuzzing of OTLP/HTTP body handling apart from the transport: any body, in either
content type, gzip or not, decodes into items or raises InputError with a reason the receiver can
count; gzip never inflates past the limit; replies are always encodable."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kpiloop.collector.http_codec import MAX_MESSAGE_CHARS, decode_body, error_reply, export_reply, gunzip
from kpiloop.collector.ingest import IngestResult
from kpiloop.errors import InputError
from tests.strategies import (
    GZIP_BOMB,
    NON_UTF8,
    adapt_and_summarize,
    deep_json,
    json_round_trip,
    mutated_bytes,
    otlp_json_requests,
    otlp_proto_requests,
)

FUZZ = settings(derandomize=True, max_examples=80, deadline=None, database=None)
LIMIT = 64 * 1024
SIGNALS = ("traces", "logs", "metrics")
CONTENT_TYPES = (b"application/json", b"application/x-protobuf", b"APPLICATION/JSON; charset=utf-8")
REASONS = {"undecodable", "bad_gzip", "too_large", "malformed", "too_deep", "bad_value"}


def decode(signal: str, content_type: bytes, body: bytes, gzipped: bool) -> list[object]:
    headers = {b"content-type": content_type, **({b"content-encoding": b"gzip"} if gzipped else {})}
    try:
        return list(decode_body(signal, headers, body, LIMIT))
    except InputError as error:
        assert str(error) and error.reason in REASONS, (error.reason, str(error))
        return []


bodies = st.one_of(
    st.binary(max_size=300),
    NON_UTF8,
    st.sampled_from((b"", b"{}", b"[]", b"null", b'"x"', b"1e999", deep_json(5000), GZIP_BOMB)),
)


@FUZZ
@given(
    signal=st.sampled_from(SIGNALS),
    content_type=st.sampled_from(CONTENT_TYPES),
    body=bodies,
    gzipped=st.booleans(),
    compress=st.booleans(),
)
@example(signal="logs", content_type=b"application/json", body=b"\x1f\x8b\x08\x00", gzipped=True, compress=False)
def test_any_body_decodes_or_is_refused_with_a_countable_reason(
    signal: str, content_type: bytes, body: bytes, gzipped: bool, compress: bool
) -> None:
    data = gzip.compress(body) if gzipped and compress else body
    adapt_and_summarize(decode(signal, content_type, data, gzipped))


@pytest.mark.parametrize("signal", SIGNALS)
@FUZZ
@given(data=st.data())
def test_hostile_json_and_protobuf_requests_gzip_or_not(signal: str, data: st.DataObject) -> None:
    if data.draw(st.booleans(), label="json"):
        body, content_type = orjson.dumps(json_round_trip(data.draw(otlp_json_requests(signal)))), CONTENT_TYPES[0]
    else:
        body, content_type = data.draw(otlp_proto_requests(signal)).SerializeToString(), CONTENT_TYPES[1]
    gzipped = data.draw(st.booleans(), label="gzip")
    payload = gzip.compress(body) if gzipped else body
    if data.draw(st.booleans(), label="mutate"):
        payload = data.draw(mutated_bytes(payload))
    adapt_and_summarize(decode(signal, content_type, payload, gzipped))


@FUZZ
@given(plain=st.binary(max_size=2 * LIMIT) | st.just(b"\0" * (LIMIT + 1)), members=st.integers(1, 3))
def test_gunzip_gives_the_bytes_back_or_refuses_past_the_limit(plain: bytes, members: int) -> None:
    body = gzip.compress(plain) * members
    try:
        assert gunzip(body, LIMIT) == plain * members
    except InputError as error:
        assert error.reason == "too_large" and len(plain) * members > LIMIT


@FUZZ
@given(data=st.data())
def test_mutated_gzip_is_inflated_or_refused(data: st.DataObject) -> None:
    valid = data.draw(st.sampled_from((gzip.compress(b"x" * 1000), zlib.compress(b"y" * 100), GZIP_BOMB[:4000])))
    try:
        assert len(gunzip(data.draw(mutated_bytes(valid)), LIMIT)) <= LIMIT
    except InputError as error:
        assert error.reason in {"bad_gzip", "too_large"}


@FUZZ
@given(message=st.text(max_size=3000), json=st.sampled_from((True, False, None)), rejected=st.integers(0, 2**40))
def test_replies_encode_any_message_bounded(message: str, json: bool | None, rejected: int) -> None:
    error = error_reply(400, message + "\ud800", json)
    assert error.encode(keep_alive=True).startswith(b"HTTP/1.1 400 ")
    assert len(error.body) <= 4 * MAX_MESSAGE_CHARS + 32
    ok = export_reply("logs", IngestResult(1, rejected, message + "\udc80"), bool(json))
    assert ok.status == 200 and len(ok.body) <= 4 * MAX_MESSAGE_CHARS + 64

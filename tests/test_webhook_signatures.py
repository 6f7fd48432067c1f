"""Signature checks refuse what they cannot read (fail closed), never raise anything else."""

from __future__ import annotations

import time
import uuid

import pytest

from integrations.webhook_signatures import (
    WebhookVerificationError,
    hmac_sha256_hex,
    verify_mailgun,
)

KEY = "key-mailgun-signing-0123456789"
PREFIX = f"test-signatures-{uuid.uuid4().hex[:8]}:"


@pytest.mark.parametrize("timestamp", ["inf", "-inf", "1e400", "nan", "12abc", "0x10"])
def test_mailgun_timestamp_that_is_no_number_is_refused_not_crashed(timestamp, redis_client):
    signature = hmac_sha256_hex(KEY, f"{timestamp}tok-1".encode())
    with pytest.raises(WebhookVerificationError) as caught:
        verify_mailgun(
            KEY, timestamp, "tok-1", signature, redis_client=redis_client, replay_prefix=PREFIX
        )
    assert caught.value.args  # a reason the receiver stores with the flagged row


def test_mailgun_genuine_signature_passes_once(redis_client):
    ts = str(int(time.time()))
    signature = hmac_sha256_hex(KEY, f"{ts}tok-2".encode())
    verify_mailgun(KEY, ts, "tok-2", signature, redis_client=redis_client, replay_prefix=PREFIX)
    with pytest.raises(WebhookVerificationError):  # the same token again is a replay
        verify_mailgun(KEY, ts, "tok-2", signature, redis_client=redis_client, replay_prefix=PREFIX)

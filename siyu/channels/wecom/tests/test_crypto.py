"""Callback crypto against the official sample vectors (see vectors.py for the sources),
plus round trips and padding properties."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.channels.wecom.crypto import (
    BLOCK_SIZE,
    InvalidKey,
    InvalidPayload,
    InvalidSignature,
    ReceiveIdMismatch,
    WeComCrypto,
    pkcs7_pad,
    pkcs7_unpad,
    sign,
)
from siyu.channels.wecom.tests import vectors as v

DOC = WeComCrypto(v.DOC_TOKEN, v.DOC_AES_KEY, v.DOC_CORP_ID)
SAMPLE = WeComCrypto(v.SAMPLE_TOKEN, v.SAMPLE_AES_KEY, v.SAMPLE_CORP_ID)


# ------------------------------------------------------------ official vectors


def test_documented_post_signature_is_reproduced():
    assert sign(v.DOC_TOKEN, v.DOC_POST_TIMESTAMP, v.DOC_POST_NONCE, v.DOC_POST_ENCRYPT) == v.DOC_POST_SIGNATURE


def test_documented_post_decrypts_to_the_documented_plaintext():
    plain = DOC.decrypt_message(v.DOC_POST_SIGNATURE, v.DOC_POST_TIMESTAMP, v.DOC_POST_NONCE, v.DOC_POST_ENCRYPT)
    assert plain == v.DOC_POST_PLAIN


def test_documented_url_verification_returns_the_plain_echostr():
    echo = DOC.verify_url(
        v.DOC_VERIFY["msg_signature"], v.DOC_VERIFY["timestamp"], v.DOC_VERIFY["nonce"], v.DOC_VERIFY["echostr"]
    )
    assert echo == v.DOC_VERIFY_PLAIN


def test_official_python_sample_verify_url_and_decrypt_msg():
    echo = SAMPLE.verify_url(
        v.SAMPLE_VERIFY["msg_signature"], v.SAMPLE_VERIFY["timestamp"], v.SAMPLE_VERIFY["nonce"], v.SAMPLE_VERIFY["echostr"]
    )
    assert echo == v.SAMPLE_VERIFY_PLAIN
    plain = SAMPLE.decrypt_message(v.SAMPLE_POST_SIGNATURE, v.SAMPLE_POST_TIMESTAMP, v.SAMPLE_POST_NONCE, v.SAMPLE_POST_ENCRYPT)
    assert plain == v.SAMPLE_POST_PLAIN


def test_documented_key_decodes_to_32_bytes_with_iv_its_first_16():
    assert len(DOC.key) == 32
    assert DOC.key == base64.b64decode(v.DOC_AES_KEY + "=")


# ------------------------------------------------------------ refusals


def test_a_changed_timestamp_fails_the_signature():
    with pytest.raises(InvalidSignature):
        DOC.decrypt_message(v.DOC_POST_SIGNATURE, "1409659814", v.DOC_POST_NONCE, v.DOC_POST_ENCRYPT)


def test_a_wrong_token_fails_the_signature():
    other = WeComCrypto("QDG6eL", v.DOC_AES_KEY, v.DOC_CORP_ID)
    with pytest.raises(InvalidSignature):
        other.verify_url(**v.DOC_VERIFY)


def test_a_payload_for_another_corp_is_refused():
    other_corp = WeComCrypto(v.DOC_TOKEN, v.DOC_AES_KEY, "ww0000000000000000")
    with pytest.raises(ReceiveIdMismatch):
        other_corp.decrypt_message(v.DOC_POST_SIGNATURE, v.DOC_POST_TIMESTAMP, v.DOC_POST_NONCE, v.DOC_POST_ENCRYPT)


def test_the_wrong_key_is_refused_not_misread():
    wrong_key = WeComCrypto(v.DOC_TOKEN, v.SAMPLE_AES_KEY, v.DOC_CORP_ID)
    with pytest.raises(InvalidPayload):
        wrong_key.decrypt(v.DOC_POST_ENCRYPT)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not base64 at all!", "undecryptable_payload"),
        (base64.b64encode(b"short").decode(), "undecryptable_payload"),
        (base64.b64encode(bytes(32)).decode(), "undecryptable_payload"),
        ("", "undecryptable_payload"),
    ],
)
def test_garbage_payloads_raise_invalid_payload(payload, reason):
    with pytest.raises(InvalidPayload) as caught:
        DOC.decrypt(payload)
    assert caught.value.reason == reason


@pytest.mark.parametrize("key", ["", "short", v.DOC_AES_KEY + "A", "!" * 43])
def test_malformed_encoding_aes_keys_are_refused(key):
    with pytest.raises(InvalidKey):
        WeComCrypto("token", key, "corp")


# ------------------------------------------------------------ round trips and padding


def test_encrypt_with_a_fixed_prefix_is_deterministic_and_decrypts():
    prefix = b"0123456789abcdef"
    first = DOC.encrypt("<xml>你好</xml>", random_prefix=prefix)
    assert first == DOC.encrypt("<xml>你好</xml>", random_prefix=prefix)
    assert DOC.decrypt(first) == "<xml>你好</xml>"
    assert len(base64.b64decode(first)) % BLOCK_SIZE == 0


@given(st.text(max_size=2000))
def test_any_message_round_trips(message):
    assert SAMPLE.decrypt(SAMPLE.encrypt(message)) == message


@given(st.binary(max_size=300))
def test_padding_reaches_a_32_byte_multiple_and_strips_back(data):
    padded = pkcs7_pad(data)
    added = len(padded) - len(data)
    assert len(padded) % BLOCK_SIZE == 0
    assert 1 <= added <= BLOCK_SIZE
    assert padded[-added:] == bytes([added]) * added
    assert pkcs7_unpad(padded) == data


@given(st.integers(1, 3).flatmap(lambda n: st.binary(min_size=n * BLOCK_SIZE, max_size=n * BLOCK_SIZE)))
def test_unpad_never_accepts_inconsistent_padding(block):
    amount = block[-1]
    consistent = 1 <= amount <= BLOCK_SIZE and block[-amount:] == bytes([amount]) * amount
    if consistent:
        assert pkcs7_unpad(block) == block[:-amount]
    else:
        with pytest.raises(InvalidPayload):
            pkcs7_unpad(block)

"""WeCom callback cryptography (回调加解密), with the semantics of Tencent's WXBizMsgCrypt.

From the documentation page 「加解密方案说明」:

- ``AESKey = Base64_Decode(EncodingAESKey + "=")`` — 32 bytes; the IV is its first 16 bytes.
- AES-256-CBC with PKCS#7 padding **to a multiple of 32 bytes** (not the cipher's 16).
- plaintext = 16 random bytes + msg length (4 bytes, big-endian) + msg + ReceiveId
  (the corp id for a self-built app).
- ``msg_signature = sha1(sort(token, timestamp, nonce, encrypted))`` as lowercase hex.

Signatures are compared in constant time. Every failure raises a :class:`WeComCryptoError`
subclass whose ``reason`` is safe to log (it never contains key material).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "BLOCK_SIZE",
    "InvalidKey",
    "InvalidPayload",
    "InvalidSignature",
    "ReceiveIdMismatch",
    "WeComCrypto",
    "WeComCryptoError",
    "pkcs7_pad",
    "pkcs7_unpad",
    "sign",
]

#: WXBizMsgCrypt pads to 32-byte blocks (PKCS7Encoder.block_size = 32 in the samples)
BLOCK_SIZE = 32
ENCODING_AES_KEY_LENGTH = 43


class WeComCryptoError(Exception):
    """Base of every callback crypto failure; ``reason`` is a short, loggable code."""

    reason = "crypto_error"


class InvalidKey(WeComCryptoError):
    reason = "invalid_encoding_aes_key"


class InvalidSignature(WeComCryptoError):
    reason = "signature_mismatch"


class InvalidPayload(WeComCryptoError):
    reason = "undecryptable_payload"


class ReceiveIdMismatch(InvalidPayload):
    reason = "receive_id_mismatch"


def sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """The documented ``msg_signature``: sha1 over the sorted concatenation."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode("utf-8")).hexdigest()


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Pad to a multiple of ``block_size``; always adds 1..block_size bytes."""
    amount = block_size - (len(data) % block_size)
    return data + bytes([amount]) * amount


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Strip PKCS#7 padding, refusing anything a correct encoder could not have produced."""
    if not data or len(data) % block_size:
        raise InvalidPayload("padded data is not a whole number of blocks")
    amount = data[-1]
    if not 1 <= amount <= block_size or data[-amount:] != bytes([amount]) * amount:
        raise InvalidPayload("bad PKCS#7 padding")
    return data[:-amount]


def decode_key(encoding_aes_key: str) -> bytes:
    """Turn the 43-character EncodingAESKey into the 32-byte AES key, or raise InvalidKey."""
    if len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH:
        raise InvalidKey(f"EncodingAESKey must be {ENCODING_AES_KEY_LENGTH} characters, got {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKey("EncodingAESKey is not base64 (a-z, A-Z, 0-9)") from exc
    if len(key) != 32:
        raise InvalidKey("EncodingAESKey does not decode to 32 bytes")
    return key


class WeComCrypto:
    """One callback configuration: the Token, the EncodingAESKey and the ReceiveId (corp id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self.key = decode_key(encoding_aes_key)
        self.receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return sign(self.token, timestamp, nonce, encrypted)

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise InvalidSignature unless ``msg_signature`` matches (constant-time compare)."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").lower().encode()):
            raise InvalidSignature("msg_signature does not match token/timestamp/nonce/payload")

    def decrypt(self, encrypted: str) -> str:
        """Decrypt one ``Encrypt``/``echostr`` value and return the message, checking its
        length field and that it was addressed to our ReceiveId."""
        try:
            ciphertext = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidPayload("payload is not base64") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise InvalidPayload("ciphertext is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        plain = pkcs7_unpad(decryptor.update(ciphertext) + decryptor.finalize())
        if len(plain) < 20:
            raise InvalidPayload("plaintext shorter than its header")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise InvalidPayload("message length field exceeds the plaintext")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise ReceiveIdMismatch("payload was encrypted for another ReceiveId (corp id)")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayload("message is not UTF-8") from exc

    def encrypt(self, message: str, *, random_prefix: bytes | None = None) -> str:
        """Encrypt like WeCom does (used for replies and to build test callbacks).
        ``random_prefix`` (16 bytes) makes the output deterministic in tests."""
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        body = message.encode("utf-8")
        plain = pkcs7_pad(prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode("utf-8"))
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification (GET): check the signature over the echostr, then return the
        decrypted echostr, which must be answered as plain text."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_message(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """Event delivery (POST): signature first, then decryption."""
        self.check_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

"""AWS event-stream framing, the binary envelope Bedrock uses for streamed responses.

Only the encoder lives here: the fake server needs to speak it so the Anthropic SDK's Bedrock
client (which has its own decoder) can be tested over real HTTP. Framing: a 12-byte prelude
(total length, headers length, prelude CRC32), string headers, the payload, a message CRC32.
"""

from __future__ import annotations

import struct
import zlib

_STRING_TYPE = 7


def _encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        name_b = name.encode()
        value_b = value.encode()
        out += struct.pack(">B", len(name_b)) + name_b
        out += struct.pack(">BH", _STRING_TYPE, len(value_b)) + value_b
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with its CRCs."""
    header_bytes = _encode_headers(headers)
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + header_bytes + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_chunk_event(payload: bytes) -> bytes:
    """A Bedrock `chunk` event (payload is `{"bytes": "<base64>"}` JSON)."""
    return encode_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        payload,
    )

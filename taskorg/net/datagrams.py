"""Sealed datagrams: small typed messages over UDP, authenticated with an HMAC of the cluster key.

Heartbeats go several times a second from every node to the arbiter. Over
HTTPS each one cost a request through requests, TLS, waitress and Flask on
both ends, and a relay hop besides; a UDP datagram with an HMAC costs
microseconds, the way VRRP and memberlist do it. The datagram is not
encrypted (a heartbeat holds a node name, an address and a replica
position, nothing secret), only authenticated: a tag over the payload with a
key derived from the cluster secret, which only nodes and administrators
hold. A different label per direction keeps a reply from passing for a
request. Freshness (no replay) is the caller's: see taskorg.dns.beat_listener.

Pure functions: no sockets here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import TypeVar

from taskorg.protocol import ProtocolError, decode, encode

T = TypeVar("T")
TAG_BYTES = 32  # HMAC-SHA256
MAX_DATAGRAM = 4096  # a heartbeat and its reply are a few hundred bytes
REQUEST = b"tkbeat1>"
REPLY = b"tkbeat1<"
_KEY_LABEL = b"taskorg heartbeat datagrams v1"


class DatagramError(ValueError):
    """A datagram that is not a sealed message of this cluster: dropped, never acted on."""


def datagram_key(secret: str) -> bytes:
    """The datagram key, derived from the cluster secret (the secret itself never keys a MAC)."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def nonce() -> str:
    """A fresh random nonce (128 bits) as URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def seal(key: bytes, label: bytes, message: object) -> bytes:
    """`message` as a datagram: the label, the tag over label and payload, the JSON payload."""
    payload = encode(message)
    tag = hmac.digest(key, label + payload, "sha256")  # one C call (hmac.new is several in Python)
    return label + tag + payload


def unseal(key: bytes, label: bytes, data: bytes, kind: type[T]) -> T:
    """The message in `data`, or DatagramError: wrong label, bad tag or not a valid `kind`."""
    if len(data) > MAX_DATAGRAM or not data.startswith(label) or len(data) < len(label) + TAG_BYTES:
        raise DatagramError("not a taskorg datagram of this kind")
    tag, payload = data[len(label):len(label) + TAG_BYTES], data[len(label) + TAG_BYTES:]
    if not hmac.compare_digest(tag, hmac.digest(key, label + payload, "sha256")):
        raise DatagramError("bad tag: not sealed with this cluster's key")
    try:
        return decode(payload, kind)
    except ProtocolError as exc:
        raise DatagramError(str(exc)) from None

"""
The wire format of soukets, with no I/O: ``CHANNEL;JSON`` lines in, frames
out, and frames back to bytes.

This module imports nothing from Twisted.  L{LineSplitter} cuts a byte stream
into lines (enforcing the maximum line length), L{decode_line} turns one line
into a L{Frame} or a L{ProtocolError}, and L{encode_frame} turns a channel and
a payload into the bytes of one server frame.  The protocol reference is
``docs/protocol.rst``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

import attrs

CONTROL = ""
"""The name of the control channel: the connection's own session."""

DEFAULT_MAX_LINE = 64 * 1024

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}\Z")

# Error codes of the protocol.
BAD_FRAME = "bad_frame"
BAD_JSON = "bad_json"
BAD_CHANNEL = "bad_channel"
UNKNOWN_TYPE = "unknown_type"
LINE_TOO_LONG = "line_too_long"
FORBIDDEN = "forbidden"
NOT_SUBSCRIBED = "not_subscribed"
ALREADY_QUEUED = "already_queued"
IN_GAME = "in_game"
NOT_IN_GAME = "not_in_game"
INVALID_MOVE = "invalid_move"
ALREADY_MOVED = "already_moved"
RATE_LIMITED = "rate_limited"
SERVER_FULL = "server_full"
BAD_TOKEN = "bad_token"
ENGINE_UNAVAILABLE = "engine_unavailable"
INTERNAL_ERROR = "internal_error"

QUOTE_LIMIT = 64
"""Error messages quote at most this many characters of what a client sent."""

EXAMPLE = ';{"type":"ping"}'


def quote(value: Any) -> str:
    """
    C{value} as an error message quotes it: its C{repr}, cut to
    L{QUOTE_LIMIT} characters with an ellipsis, so that a huge field never
    makes a huge error line.
    """
    text = repr(value)
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 1] + "…"
    return text


def is_channel_name(name: str) -> bool:
    """
    Whether C{name} is a valid (non-control) channel name: 1 to 64
    characters from C{A-Z a-z 0-9 _ . : -}.
    """
    return _CHANNEL_NAME.match(name) is not None


@attrs.define
class Frame:
    """
    One frame a client sent: the channel it names, its C{type}, its C{id}
    (or L{None}) and the whole JSON object it carried.

    Nothing changes a frame once it is read, but the class is not frozen:
    a frozen attrs class takes three times as long to make (0.65 µs
    against 0.23), and one is made for every frame a client sends.
    """

    channel: str
    type: str
    body: Mapping[str, Any]
    id: str | int | None = None
    data_json: str | None = None
    """
    For a publish written C{{"type":"publish","data":...}} with compact
    data: the data's JSON text exactly as the client sent it, so that it
    is relayed without being encoded again.
    """


@attrs.frozen
class ProtocolError(Exception):
    """
    What went wrong with one client frame, ready to be sent back as an
    C{error} frame on C{channel}, echoing C{id}.
    """

    code: str
    message: str
    channel: str = CONTROL
    id: str | int | None = None

    def to_payload(self) -> dict[str, Any]:
        """
        The JSON object of the C{error} frame for this error.
        """
        payload: dict[str, Any] = {
            "type": "error",
            "code": self.code,
            "message": self.message,
        }
        if self.id is not None:
            payload["id"] = self.id
        return payload


@attrs.frozen
class LineTooLong:
    """
    Marks a line that passed the maximum length: it was discarded.
    """

    length: int


@attrs.frozen
class BinaryMessage:
    """
    Marks a binary WebSocket message: frames are text.
    """

    length: int


@attrs.define
class LineSplitter:
    """
    Cuts a stream of bytes into lines ending in C{\\n} (a C{\\r\\n} ending is
    accepted too), without ever holding more than C{max_line} bytes of one
    line.

    A line longer than C{max_line} bytes (not counting its ending) is
    reported once as L{LineTooLong} and its bytes are dropped up to the next
    newline.
    """

    max_line: int = DEFAULT_MAX_LINE
    _buffer: bytearray = attrs.field(factory=bytearray)
    _discarding: int = 0  # bytes dropped so far of an over-long line

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        """
        Take C{data}; return every complete line it ends (without its line
        ending), and a L{LineTooLong} for every line that was too long.
        """
        end = len(data)
        if end and data.find(b"\n") == end - 1 and not self._buffer and not self._discarding:
            # (The usual case: exactly one whole line, nothing held.)
            line = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            if len(line) <= self.max_line:
                return [line]
        lines: list[bytes | LineTooLong] = []
        start = 0
        while start < end:
            newline = data.find(b"\n", start)
            if self._discarding:
                if newline < 0:
                    self._discarding += end - start
                    return lines
                self._discarding += newline - start
                too_long = LineTooLong(self._discarding)
                self._discarding = 0
                start = newline + 1
                lines.append(too_long)
                continue
            if newline < 0:
                self._buffer += data[start:]
                # A trailing "\r" may still be the start of "\r\n".
                if len(self._buffer) > self.max_line + 1 or (
                    len(self._buffer) == self.max_line + 1
                    and not self._buffer.endswith(b"\r")
                ):
                    self._discarding = len(self._buffer)
                    del self._buffer[:]
                return lines
            if self._buffer:
                self._buffer += data[start:newline]
                line = bytes(self._buffer)
                del self._buffer[:]
            else:
                line = data[start:newline]
            start = newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                lines.append(LineTooLong(len(line)))
            else:
                lines.append(line)
        return lines

    @property
    def pending(self) -> int:
        """
        How many bytes of an unfinished line are held.
        """
        return len(self._buffer)


def _error(code: str, message: str, channel: str = CONTROL, id: Any = None):
    return ProtocolError(code, message, channel, id)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's json module accepts them.
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e400 is JSON, but a double cannot hold it, nor could it be sent on.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_scan_once = _decoder.scan_once

# A JSON \\u escape of a surrogate (D800 to DFFF).  Escaped pairs decode to
# one character; a lone one decodes to a string that is not Unicode text and
# could never be sent back.  Lines without such an escape are not checked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _not_unicode(value: Any) -> bool:
    """
    Whether decoded JSON C{value} holds a lone surrogate somewhere.
    """
    try:
        compact_json(value).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_LONE_SURROGATE_MESSAGE = (
    "the JSON holds a \\u escape of a lone surrogate (\\ud800 to \\udfff "
    "without its pair), which is not Unicode text; escape characters above "
    "U+FFFF as a pair, or send them as UTF-8"
)

# How publishes are usually written, and the fast way to read them.
_PUBLISH_HEAD = '{"type":"publish","data":'


def _decode_publish(channel: str, document: str) -> Frame | None:
    """
    Read C{document} if it is exactly C{{"type":"publish","data":DATA}};
    L{None} for any other document (including a malformed one), which
    L{decode_line} then reads the general way.
    """
    start = len(_PUBLISH_HEAD)
    try:
        # (raw_decode's own scanner, without the Python call around it.)
        data, end = _scan_once(document, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(document) - 1:
        return None
    data_json: str | None = document[start:end]
    # (A \u escape is rare: the pattern is looked for only where there is one.)
    if "\\u" in data_json and _SURROGATE_ESCAPE.search(data_json) and _not_unicode(data):
        return None  # decode_line says what is wrong
    if " " in data_json or "\t" in data_json or "\r" in data_json:
        data_json = None  # perhaps not compact: encode it again
    return Frame(channel, "publish", {"type": "publish", "data": data}, None, data_json)


# Channel names already found valid, so that each is checked once (at most
# _NAMES_SEEN_COUNT are kept).
_NAMES_SEEN: set[str] = set()
_NAMES_SEEN_COUNT = 4096

# Short documents that clients send again and again ({"type":"queue"}, a
# move, a ping) are read once: each later frame gets a copy of the body.
# Bounded: at most _REPEATED_COUNT documents of _REPEATED_LENGTH characters.
_REPEATED: dict[str, tuple[str, dict[str, Any], str | int | None]] = {}
_REPEATED_LENGTH = 64
_REPEATED_COUNT = 1024


def decode_line(line: bytes) -> Frame | ProtocolError | None:
    """
    Read one line (without its ending) as a client frame.

    @return: the L{Frame}; a L{ProtocolError} saying what is wrong with it;
        or L{None} for an empty line, which is ignored.
    """
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return _error(
            BAD_FRAME,
            "this line is not UTF-8 text; send CHANNEL;JSON lines "
            f"such as {EXAMPLE}",
        )
    channel, sep, document = text.partition(";")
    if not sep:
        return _error(
            BAD_FRAME,
            "a frame is CHANNEL;JSON (an empty channel name for the "
            f"control channel), for example {EXAMPLE}",
        )
    if channel and channel not in _NAMES_SEEN:
        if not is_channel_name(channel):
            return _error(
                BAD_CHANNEL,
                "a channel name is 1 to 64 characters from A-Z a-z 0-9 _ . : - "
                '(for example room;{"type":"subscribe"}), or empty for the '
                "control channel",
            )
        if len(_NAMES_SEEN) >= _NAMES_SEEN_COUNT:
            _NAMES_SEEN.clear()
        _NAMES_SEEN.add(channel)
    if channel and document.startswith(_PUBLISH_HEAD) and document.endswith("}"):
        frame = _decode_publish(channel, document)
        if frame is not None:
            return frame
    repeated = _REPEATED.get(document)
    if repeated is not None:
        frame_type, body, frame_id = repeated
        return Frame(channel, frame_type, dict(body), frame_id)
    try:
        body = _decoder.decode(document)
    except (ValueError, RecursionError):
        return _error(
            BAD_JSON,
            "the text after the first ';' must be one JSON object, "
            f"for example {EXAMPLE}",
            channel,
        )
    if not isinstance(body, dict):
        return _error(
            BAD_JSON,
            "the text after the first ';' must be a JSON object, "
            f"for example {EXAMPLE}",
            channel,
        )
    if _SURROGATE_ESCAPE.search(document) and _not_unicode(body):
        return _error(BAD_JSON, _LONE_SURROGATE_MESSAGE, channel)
    frame_id = body.get("id")
    if frame_id is not None and (
        isinstance(frame_id, bool) or not isinstance(frame_id, (str, int))
    ):
        return _error(
            BAD_JSON,
            'a frame\'s "id" must be a string or an integer, '
            'for example ;{"type":"ping","id":1}',
            channel,
        )
    frame_type = body.get("type")
    if not isinstance(frame_type, str):
        return _error(
            BAD_JSON,
            'a frame\'s JSON object needs a string "type", '
            f"for example {EXAMPLE}",
            channel,
            frame_id,
        )
    if len(document) <= _REPEATED_LENGTH:
        if len(_REPEATED) >= _REPEATED_COUNT:
            _REPEATED.clear()
        _REPEATED[document] = (frame_type, dict(body), frame_id)
    return Frame(channel, frame_type, body, frame_id)


def with_id(payload: dict[str, Any], frame_id: str | int | None) -> dict[str, Any]:
    """
    C{payload}, echoing the id of the client frame it answers (if it had
    one).
    """
    if frame_id is not None:
        payload["id"] = frame_id
    return payload


_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
)
# The same encoder's C core, made once rather than for every frame as
# JSONEncoder.encode does (a game writes ten frames; this is a third of
# their encoding time).  Payloads are made by the server or parsed from
# JSON, so they have no cycles to check for.
_c_encoder = (
    json.encoder.c_make_encoder(
        None, _encoder.default, json.encoder.encode_basestring,
        None, ":", ",", False, False, False,
    )
    if json.encoder.c_make_encoder is not None
    else None
)


def compact_json(value: Any) -> str:
    """
    C{value} as compact JSON text (no spaces, non-ASCII kept, no NaN).
    """
    if _c_encoder is None:  # pragma: no cover (CPython has the C encoder)
        return _encoder.encode(value)
    return "".join(_c_encoder(value, 0))


def encode_frame(channel: str, payload: Mapping[str, Any]) -> bytes:
    """
    The bytes of one server frame: C{CHANNEL;JSON\\n}, compact JSON.
    """
    return f"{channel};{compact_json(payload)}\n".encode("utf-8")


def encode_message(channel: str, sender: str, data: Any, data_json: str | None = None) -> bytes:
    """
    The bytes of the C{message} frame that relays C{data} from client
    C{sender} (a server-made id, which needs no escaping) on C{channel}:
    the same bytes as L{encode_frame} would give, built around
    C{data_json}, the data's compact JSON text, when the client's own can
    be used.
    """
    if data_json is None:
        data_json = compact_json(data)
    return f'{channel};{{"type":"message","from":"{sender}","data":{data_json}}}\n'.encode(
        "utf-8"
    )

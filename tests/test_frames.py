"""
Tests for L{soukets.frames}: splitting lines, decoding frames into frames or
errors, encoding server frames.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from soukets import frames
from soukets.frames import (
    Frame,
    LineSplitter,
    LineTooLong,
    ProtocolError,
    decode_line,
    encode_frame,
    encode_message,
    is_channel_name,
)


class LineSplitterTests(SynchronousTestCase):
    def test_lines_and_endings(self) -> None:
        """
        Lines end in LF or CRLF; the ending is not part of the line, and a
        line may arrive in pieces.
        """
        splitter = LineSplitter()
        self.assertEqual(list(splitter.feed(b"a;1\nb;2\r\nc")), [b"a;1", b"b;2"])
        self.assertEqual(list(splitter.feed(b";3\r")), [])
        self.assertEqual(list(splitter.feed(b"\n")), [b"c;3"])

    def test_one_whole_line_a_read(self) -> None:
        """
        A read that is exactly one whole line (the usual case, read
        without the general loop) gives the same as any other: endings
        dropped, an empty line, a line too long, and a line that ends what
        an earlier read began.
        """
        splitter = LineSplitter(max_line=4)
        self.assertEqual(splitter.feed(b"a;1\n"), [b"a;1"])
        self.assertEqual(splitter.feed(b"a;1\r\n"), [b"a;1"])
        self.assertEqual(splitter.feed(b"\n"), [b""])
        self.assertEqual(splitter.feed(b"abcde\n"), [LineTooLong(5)])
        self.assertEqual(splitter.feed(b"abcd\r\n"), [b"abcd"])
        self.assertEqual(splitter.feed(b"ab"), [])
        self.assertEqual(splitter.feed(b"c\n"), [b"abc"])
        self.assertEqual(splitter.feed(b""), [])

    def test_exactly_max_line(self) -> None:
        """
        A line of exactly C{max_line} bytes is accepted, even when its CR
        and LF arrive separately.
        """
        splitter = LineSplitter(max_line=4)
        self.assertEqual(list(splitter.feed(b"abcd\r")), [])
        self.assertEqual(list(splitter.feed(b"\nabcd\n")), [b"abcd", b"abcd"])

    def test_too_long_discarded_once(self) -> None:
        """
        A line over C{max_line} bytes is reported once, with its length, and
        dropped up to its newline; what follows is read normally.
        """
        splitter = LineSplitter(max_line=4)
        self.assertEqual(list(splitter.feed(b"abcde")), [])
        self.assertEqual(list(splitter.feed(b"fgh" * 100)), [])
        self.assertEqual(splitter.pending, 0)
        self.assertEqual(
            list(splitter.feed(b"ij\nok\n")), [LineTooLong(307), b"ok"]
        )

    def test_too_long_in_one_piece(self) -> None:
        """
        An over-long line that arrives whole, with its newline, is reported.
        """
        splitter = LineSplitter(max_line=4)
        self.assertEqual(
            list(splitter.feed(b"abcdef\r\nab\n")), [LineTooLong(6), b"ab"]
        )

    def test_memory_bounded(self) -> None:
        """
        The splitter never holds more than C{max_line} (+1 for a CR) bytes.
        """
        splitter = LineSplitter(max_line=100)
        for _ in range(1000):
            list(splitter.feed(b"x" * 77))
            self.assertLessEqual(splitter.pending, 101)


class DecodeCase(SynchronousTestCase):
    """
    Tests of L{decode_line}, with a way to check the error a line gets.
    """

    def assertError(self, line: bytes, code: str, channel: str = "") -> ProtocolError:
        error = decode_line(line)
        self.assertIsInstance(error, ProtocolError)
        assert isinstance(error, ProtocolError)
        self.assertEqual((error.code, error.channel), (code, channel))
        self.assertTrue(error.message)
        return error


class DecodeLineTests(DecodeCase):

    def test_control_frame(self) -> None:
        self.assertEqual(
            decode_line(b';{"type":"ping","id":7}'),
            Frame("", "ping", {"type": "ping", "id": 7}, 7),
        )

    def test_split_at_first_semicolon(self) -> None:
        """
        The channel ends at the first C{;}; later ones belong to the JSON.
        """
        frame = decode_line(b'room;{"type":"publish","data":"a;b"}')
        assert isinstance(frame, Frame)
        self.assertEqual((frame.channel, frame.body["data"]), ("room", "a;b"))

    def test_empty_lines_ignored(self) -> None:
        for line in (b"", b"   ", b"\t"):
            self.assertIsNone(decode_line(line))

    def test_bad_frame_no_semicolon(self) -> None:
        error = self.assertError(b"hello", frames.BAD_FRAME)
        self.assertIn(';{"type":"ping"}', error.message)

    def test_bad_frame_not_utf8(self) -> None:
        self.assertError(b'\xff\xfb\x01;{"type":"ping"}', frames.BAD_FRAME)

    def test_bad_channel(self) -> None:
        """
        A bad channel name is reported on the control channel.
        """
        for name in (b"a b", b"x" * 65, b"caf\xc3\xa9", b"a/b"):
            self.assertError(name + b';{"type":"subscribe"}', frames.BAD_CHANNEL)

    def test_channel_names(self) -> None:
        self.assertTrue(is_channel_name("Az09_.:-"))
        self.assertTrue(is_channel_name("x" * 64))
        self.assertFalse(is_channel_name(""))
        self.assertFalse(is_channel_name("x\n"))

    def test_bad_json(self) -> None:
        """
        Unparseable JSON, JSON that is not an object, NaN, and nesting too
        deep are C{bad_json} on the channel the frame named.
        """
        for document in (b"{", b"[1]", b'"s"', b"NaN", b'{"a":Infinity}', b"[" * 100_000):
            self.assertError(b"room;" + document, frames.BAD_JSON, "room")

    def test_huge_number(self) -> None:
        self.assertError(b';{"type":"x","n":' + b"9" * 5000 + b"}", frames.BAD_JSON)

    def test_number_out_of_range(self) -> None:
        """
        A number no double can hold is C{bad_json}, however the frame is
        written (it could not be relayed as JSON).
        """
        for document in (b'{"type":"publish","data":1e400}',
                         b'{"type":"publish","data":[-1e400]}',
                         b'{ "type": "publish", "data": 1e400 }',
                         b'{"type":"publish","data":1,"n":1e999}'):
            self.assertError(b"room;" + document, frames.BAD_JSON, "room")

    def test_missing_type(self) -> None:
        error = self.assertError(b'room;{"id":"a"}', frames.BAD_JSON, "room")
        self.assertEqual(error.id, "a")
        self.assertError(b';{"type":3}', frames.BAD_JSON)

    def test_bad_id(self) -> None:
        for value in (b"1.5", b"true", b"[1]", b"{}"):
            error = self.assertError(b';{"type":"ping","id":' + value + b"}", frames.BAD_JSON)
            self.assertIsNone(error.id)

    def test_error_payload(self) -> None:
        self.assertEqual(
            ProtocolError("bad_json", "m", "room", 3).to_payload(),
            {"type": "error", "code": "bad_json", "message": "m", "id": 3},
        )
        self.assertNotIn("id", ProtocolError("bad_json", "m").to_payload())


class RepeatedDocumentTests(DecodeCase):
    """
    Short documents read once and then copied: the same frames as reading
    them anew, each with a body of its own, and a bounded table.
    """

    def test_same_frame_own_body(self) -> None:
        first = decode_line(b'lobby:a;{"type":"move","move":"rock","id":7}')
        second = decode_line(b'lobby:b;{"type":"move","move":"rock","id":7}')
        self.assertEqual((second.channel, second.type, second.body, second.id),
                         ("lobby:b", "move", {"type": "move", "move": "rock", "id": 7}, 7))
        self.assertEqual(first.body, second.body)
        first.body["move"] = "paper"  # (a game that changed a body...)
        third = decode_line(b'lobby:c;{"type":"move","move":"rock","id":7}')
        self.assertEqual(third.body["move"], "rock")  # (...changed no other)

    def test_errors_and_long_documents_read_each_time(self) -> None:
        for _ in range(2):
            self.assertError(b';{"type":3}', "bad_json")
        self.assertNotIn('{"type":3}', frames._REPEATED)
        long = '{"type":"hello","name":"%s"}' % ("x" * 60)
        decode_line(f";{long}".encode())
        self.assertNotIn(long, frames._REPEATED)

    def test_bounded(self) -> None:
        for n in range(3 * frames._REPEATED_COUNT):
            frame = decode_line(b';{"type":"ping","id":%d}' % n)
            self.assertEqual(frame.id, n)
            self.assertLessEqual(len(frames._REPEATED), frames._REPEATED_COUNT)


class NamesSeenTests(DecodeCase):
    """
    Channel names found valid are remembered, so each is checked once: only
    valid ones, in a bounded table.
    """

    def test_only_valid_names(self) -> None:
        for _ in range(2):
            self.assertError(b'bad name;{"type":"subscribe"}', "bad_channel")
        self.assertNotIn("bad name", frames._NAMES_SEEN)
        decode_line(b'good.name;{"type":"subscribe"}')
        self.assertIn("good.name", frames._NAMES_SEEN)

    def test_bounded(self) -> None:
        for n in range(2 * frames._NAMES_SEEN_COUNT):
            frame = decode_line(b'room%d;{"type":"subscribe"}' % n)
            self.assertEqual(frame.channel, f"room{n}")
            self.assertLessEqual(len(frames._NAMES_SEEN), frames._NAMES_SEEN_COUNT)
        self.assertError(b'bad name;{"type":"subscribe"}', "bad_channel")


class PublishPassThroughTests(SynchronousTestCase):
    """
    A publish written C{{"type":"publish","data":DATA}} with compact DATA
    carries DATA's own text, which is relayed without encoding it again.
    """

    def test_compact_data_kept(self) -> None:
        for data in (b'"hi"', b"1E5", b'{"a":[1,2.50,"\\u00e9"]}', b"null", b'"a;b"'):
            frame = decode_line(b'room;{"type":"publish","data":' + data + b"}")
            assert isinstance(frame, Frame)
            self.assertEqual(frame.data_json, data.decode())
            self.assertEqual(frame.body, {"type": "publish", "data": json.loads(data)})
            self.assertEqual((frame.channel, frame.type, frame.id), ("room", "publish", None))

    def test_otherwise_decoded(self) -> None:
        """
        Spaces, another key order, an id or a trailing key: the frame is
        read the general way and its data will be encoded again.
        """
        for document, data in (
            (b'{"type":"publish","data":{"a": 1}}', {"a": 1}),
            (b'{"type":"publish","data":"a b"}', "a b"),
            (b'{"data":2,"type":"publish"}', 2),
            (b'{"type":"publish","data":3,"id":9}', 3),
            (b'{"type": "publish", "data": 4}', 4),
        ):
            frame = decode_line(b"room;" + document)
            assert isinstance(frame, Frame), document
            self.assertEqual((frame.type, frame.body["data"], frame.data_json),
                             ("publish", data, None))
        frame = decode_line(b'room;{"type":"publish","data":3,"id":9}')
        assert isinstance(frame, Frame)
        self.assertEqual(frame.id, 9)

    def test_control_channel_not_special(self) -> None:
        frame = decode_line(b';{"type":"publish","data":1}')
        assert isinstance(frame, Frame)
        self.assertIsNone(frame.data_json)

    def test_broken_data(self) -> None:
        for document in (b'{"type":"publish","data":}', b'{"type":"publish","data":[1}',
                         b'{"type":"publish","data":1}}', b'{"type":"publish","data":NaN}'):
            error = decode_line(b"room;" + document)
            self.assertIsInstance(error, ProtocolError, document)
            self.assertEqual(error.code, frames.BAD_JSON)

    def test_message_bytes(self) -> None:
        """
        L{encode_message} gives the bytes L{encode_frame} would, from the
        data or from its compact text.
        """
        data = {"é": [1, 2.5, None, "x\ny"]}
        expected = encode_frame("room", {"type": "message", "from": "ab-1", "data": data})
        self.assertEqual(encode_message("room", "ab-1", data), expected)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self.assertEqual(encode_message("room", "ab-1", data, text), expected)


class EncodeFrameTests(SynchronousTestCase):
    def test_compact(self) -> None:
        self.assertEqual(
            encode_frame("", {"type": "pong", "id": "x"}),
            b';{"type":"pong","id":"x"}\n',
        )

    def test_utf8_and_newlines(self) -> None:
        """
        Text is sent as UTF-8; newlines inside strings are escaped, so a
        frame is always one line.
        """
        data = encode_frame("r", {"data": "é\nx\u2028"})
        self.assertEqual(data.count(b"\n"), 1)
        self.assertEqual(json.loads(data[2:].decode("utf-8")), {"data": "é\nx\u2028"})

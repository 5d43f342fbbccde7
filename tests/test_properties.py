"""
Property-based tests (hypothesis): arbitrary bytes, split at arbitrary
points, never hurt the decoder or a live session; every bad line gets
exactly one error frame with the right code, and the connection still
answers ping.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from soukets.frames import Frame, LineSplitter, ProtocolError, decode_line
from soukets.server import ServerSettings

from tests.support import Harness

MAX_LINE = 200
PING = b';{"type":"ping"}'

# Lines of a known kind, and the code (or frame type) each must produce.
KNOWN_LINES = st.one_of(
    st.text(st.characters(blacklist_characters=";\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=50)
    .filter(lambda t: t.strip())
    .map(lambda t: (t.encode(), "bad_frame")),
    st.binary(min_size=1, max_size=20).map(lambda b: (b"\xff" + b.replace(b"\n", b""), "bad_frame")),
    st.sampled_from([b"a b", b"x" * 65, b"\xc3\xa9t\xc3\xa9", b"a/b"]).map(
        lambda c: (c + b';{"type":"subscribe"}', "bad_channel")
    ),
    st.sampled_from([b"{", b"[]", b"nul", b"NaN", b'{"type":1}', b"[" * 150]).map(
        lambda j: (b";" + j, "bad_json")
    ),
    st.text("abcxyz", min_size=1, max_size=10).map(
        lambda t: (b';{"type":"zz' + t.encode() + b'"}', "unknown_type")
    ),
    st.integers(MAX_LINE + 1, 3 * MAX_LINE).map(lambda n: (b"x" * n, "line_too_long")),
    st.just((PING, "pong")),
    st.just((b";" + b" " * (MAX_LINE - 16) + b'{"type":"ping"}', "pong")),  # exactly max
)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def live_session() -> tuple[Harness, object]:
    h = Harness(ServerSettings(auto_queue=False, max_line=MAX_LINE, max_rate=1e9, rate_burst=1e9))
    session = h.connect()
    h.frames(session)
    return h, session


class DecoderProperties(SynchronousTestCase):
    @given(st.binary(max_size=300))
    def test_decode_never_raises(self, line: bytes) -> None:
        result = decode_line(line)
        self.assertIsInstance(result, (Frame, ProtocolError, type(None)))

    @given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20))
    def test_splitter_bounded(self, data: bytes, cuts: list[int]) -> None:
        splitter = LineSplitter(MAX_LINE)
        for piece in chunks(data, cuts):
            for line in splitter.feed(piece):
                if isinstance(line, bytes):
                    self.assertLessEqual(len(line), MAX_LINE)
            self.assertLessEqual(splitter.pending, MAX_LINE + 1)


class SessionProperties(SynchronousTestCase):
    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(KNOWN_LINES, min_size=1, max_size=12),
        st.sampled_from([b"\n", b"\r\n"]),
        st.lists(st.integers(0, 5000), max_size=15),
    )
    def test_one_answer_per_line(self, lines, ending, cuts) -> None:
        """
        Each line gets exactly one frame back: the error its fault calls
        for (on the control channel or the channel it named), or pong.
        """
        h, session = live_session()
        data = b"".join(line + ending for line, _ in lines)
        for piece in chunks(data, cuts):
            session.data_received(piece)
        answers = [
            body.get("code", body["type"]) for _, body in h.frames(session)
        ]
        self.assertEqual(answers, [expected for _, expected in lines])

    @settings(max_examples=150)
    @given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=15))
    def test_garbage_then_ping(self, garbage: bytes, cuts: list[int]) -> None:
        """
        Whatever arrives, the session does not raise and, once a line ends,
        still answers ping.
        """
        h, session = live_session()
        for piece in chunks(garbage + b"\n", cuts):
            session.data_received(piece)
        h.frames(session)
        session.data_received(PING + b"\n")
        self.assertEqual(h.frames(session), [("", {"type": "pong"})])


class NastyInputTests(SynchronousTestCase):
    """
    The inputs a server exposed on a port meets, one by one.
    """

    def answer(self, line: bytes) -> list:
        h, session = live_session()
        session.data_received(line + b"\n" + PING + b"\n")
        return [body.get("code", body["type"]) for _, body in h.frames(session)]

    def test_deep_nesting(self) -> None:
        h = Harness(ServerSettings(auto_queue=False, max_line=1 << 20))
        session = h.connect()
        h.frames(session)
        session.data_received(b";" + b"[" * 100_000 + b"]" * 100_000 + b"\n" + PING + b"\n")
        self.assertEqual([b.get("code", b["type"]) for _, b in h.frames(session)], ["bad_json", "pong"])

    def test_just_under_and_over(self) -> None:
        under = b';{"type":"ping","p":"' + b"x" * (MAX_LINE - 23) + b'"}'
        self.assertEqual(len(under), MAX_LINE)
        self.assertEqual(self.answer(under), ["pong", "pong"])
        self.assertEqual(self.answer(under + b" "), ["line_too_long", "pong"])

    def test_huge_number(self) -> None:
        h = Harness(ServerSettings(auto_queue=False))
        session = h.connect()
        h.frames(session)
        session.data_received(b'room;{"type":"publish","data":' + b"9" * 10_000 + b"}\n" + PING + b"\n")
        self.assertEqual([b.get("code", b["type"]) for _, b in h.frames(session)], ["bad_json", "pong"])

    def test_nul_iac_cr(self) -> None:
        self.assertEqual(self.answer(b"\x00\x00"), ["bad_frame", "pong"])
        self.assertEqual(self.answer(b"\xff\xfb\x01\xff\xfd\x03"), ["bad_frame", "pong"])
        self.assertEqual(self.answer(b"\r"), ["pong"])
        self.assertEqual(self.answer(b";{\"type\":\"ping\"}\r\r"), ["pong", "pong"])  # JSON allows the spare CR

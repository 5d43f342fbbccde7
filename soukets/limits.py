"""
Per-connection limits, with no I/O: a token bucket for frame floods, and
the bookkeeping of idle connections.  Time comes from an injected
L{IReactorTime}.
"""

from __future__ import annotations

import enum

import attrs
from twisted.internet.interfaces import IReactorTime

STRIKES_BEFORE_DISCONNECT = 5
"""A client warned with rate_limited this many seconds in a row is cut off."""


@attrs.define
class TokenBucket:
    """
    Allows C{rate} frames a second on average, and bursts of up to C{burst}.
    """

    rate: float
    burst: float
    clock: IReactorTime
    _tokens: float = attrs.field(init=False)
    _last: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst
        self._last = self.clock.seconds()

    def take(self, now: float | None = None) -> bool:
        """
        Spend one token if there is one; return whether there was.

        @param now: the clock's time, if the caller has just read it.
        """
        if now is None:
            now = self.clock.seconds()
        tokens = self._tokens + (now - self._last) * self.rate
        if tokens > self.burst:  # (not min(): a call, on every frame)
            tokens = self.burst
        self._last = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False


class FloodVerdict(enum.Enum):
    """
    What to do with a frame, under the rate limit.
    """

    ACCEPT = "accept"
    DROP = "drop"  # drop it silently: the client was warned less than 1 s ago
    WARN = "warn"  # drop it and send rate_limited
    DISCONNECT = "disconnect"  # the flood goes on: cut the client off


# The verdicts as module names, for the hot path: Python 3.11 reads an
# enum's member through its class in 70 ns (the enum's metaclass has a
# __getattr__, which turns off the fast lookup), a module's name in 20, and
# every frame a client sends gets a verdict.
ACCEPT = FloodVerdict.ACCEPT
DROP = FloodVerdict.DROP
WARN = FloodVerdict.WARN
DISCONNECT = FloodVerdict.DISCONNECT


@attrs.define
class FloodGuard(TokenBucket):
    """
    A client's L{TokenBucket} for its frames, and what happens over the
    limit: frames are dropped and the client is warned at most once a
    second; a client still flooding after L{STRIKES_BEFORE_DISCONNECT}
    warnings in a row (each within 2 s of the previous) is to be
    disconnected.
    """

    _warned_at: float | None = None
    _strikes: int = 0

    def check(self, now: float | None = None) -> FloodVerdict:
        """
        What to do with one more frame (at C{now}, the clock's time, if the
        caller has just read it).
        """
        if now is None:
            now = self.clock.seconds()
        if self.take(now):
            return ACCEPT
        if self._warned_at is not None and now - self._warned_at < 1.0:
            return DROP
        if self._warned_at is not None and now - self._warned_at <= 2.0:
            self._strikes += 1
        else:
            self._strikes = 1
        self._warned_at = now
        if self._strikes > STRIKES_BEFORE_DISCONNECT:
            return DISCONNECT
        return WARN

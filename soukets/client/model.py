"""
What the terminal client knows and says, with no I/O: server frames in,
sentences for a person out; typed commands in, frames to send out.
"""

from __future__ import annotations

import enum
import math
import json
from typing import Any, Callable, Mapping, Sequence

import attrs
from twisted.internet.interfaces import IReactorTime

from soukets.frames import CONTROL, is_channel_name
from soukets.games.rps import SHAPES

MOVE_KEYS = {shape[0]: shape for shape in SHAPES} | {shape: shape for shape in SHAPES}

HELP = """\
commands:
  r, p, s (or rock, paper, scissors)   play, when a round asks for your move
  any other text                        say it to the other players of your lobby
  /queue, /unqueue                      join or leave the matchmaking queue
  /sub CHANNEL, /unsub CHANNEL          subscribe to or unsubscribe from a channel
  /pub CHANNEL TEXT                     publish TEXT on CHANNEL
  /who CHANNEL                           who is on a channel
  /games, /watch LOBBY, /unwatch        the running games; watch one, or stop
  /ping                                 measure the round trip to the server
  /stats                                the server's figures
  /help                                 this text
  /quit (or Ctrl-D, Ctrl-C)             leave"""


class Stage(enum.Enum):
    """
    Where the player is, as the client sees it.
    """

    CONNECTING = "connecting"
    IDLE = "idle"  # connected, not queued, not playing
    QUEUED = "queued"
    PLAYING = "playing"  # in a lobby, between rounds or after moving
    MOVING = "moving"  # a round waits for this player's move
    ASKING = "asking"  # game over: play again?


@attrs.frozen
class Send:
    """
    A frame the client should send.
    """

    channel: str
    payload: Mapping[str, Any]


@attrs.frozen
class Quit:
    """
    The person asked to leave.
    """


def plural(count: int, one: str, many: str | None = None) -> str:
    """
    C{count} and the word, singular or plural: C{1 channel}, C{2 channels}.
    """
    return f"{count} {one if count == 1 else (many or one + 's')}"


def join_names(names: Sequence[str]) -> str:
    """
    C{a}, C{a and b}, C{a, b and c}.
    """
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def describe(data: Any) -> str:
    """
    Published data as text: strings as they are, anything else as JSON.
    """
    if isinstance(data, str):
        return data
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@attrs.define
class PlayerView:
    """
    The client's model of its session: it reads server frames and says what
    happened, in words, through C{say}; it turns what the person types into
    frames to send.  C{clock} gives the time for countdowns and ping
    round-trips.
    """

    clock: IReactorTime
    say: Callable[[str], None]
    name: str | None = None
    server: str = "soukets"
    stage: Stage = Stage.CONNECTING
    me: str = ""
    lobby_size: int = 2
    names: dict[str, str] = attrs.field(factory=dict)
    lobby: str | None = None
    players: tuple[str, ...] = ()
    round: int = 0
    deadline: float | None = None
    my_move: str | None = None
    moved: set[str] = attrs.field(factory=set)
    subscriptions: set[str] = attrs.field(factory=set)
    greeted: bool = False
    hold_moves: bool = False
    """Keep moves typed before a round asks for them, for the next rounds
    (for scripts, which cannot wait for the question)."""
    farewell: str | None = None
    """Why the server said goodbye (C{bye}), if it did."""
    resume_token: str | None = None
    """The token that takes this player's seat back, while in a game."""
    resuming: bool = False
    """A new connection is taking the seat back."""
    seat_lost: bool = False
    """The seat could not be taken back."""
    hurried: bool = False
    """The server said to hurry in this round (the countdown shows it)."""
    watching: str | None = None
    _held_moves: list[str] = attrs.field(factory=list)
    _pings: dict[str, float] = attrs.field(factory=dict)
    _next_id: int = 0
    _held_says: list[str] | None = None  # said while names are awaited
    _release: Any = None
    _out: Callable[[str], None] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Everything said goes through _tell, which may hold it back a
        # moment (see _on_matched).
        self._out = self.say
        self.say = self._tell

    def _tell(self, text: str) -> None:
        if self._held_says is not None:
            self._held_says.append(text)
        else:
            self._out(text)

    NAME_WAIT = 0.5
    """Seconds the match is not announced while the others' names come."""

    def _matched_line(self) -> str:
        others = [self.who(p) for p in self.players if p != self.me]
        short = (self.lobby or "").removeprefix("lobby:")[:4]
        return f"matched in lobby {short}… with {join_names(others)}"

    def _names_missing(self) -> bool:
        return any(self.names.get(p, p) == p for p in self.players if p != self.me)

    def _release_says(self) -> None:
        """
        Say the match (with the names known by now) and what waited for it.
        """
        if self._release is not None and self._release.active():
            self._release.cancel()
        self._release = None
        held, self._held_says = self._held_says or [], None
        self._out(self._matched_line())
        for text in held:
            self._out(text)

    # What the server says

    def received(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        """
        Take one server frame; return any frames to send in answer.
        """
        kind = body.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []
        return handler(channel, body) or []

    def _on_welcome(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        self.me = body["client"]
        self.lobby_size = body.get("lobby_size", 2)
        self.stage = Stage.IDLE
        self.names[self.me] = self.name or self.me
        sends = []
        if self.resuming and self.resume_token:
            # Back after a lost connection: take the seat, not the queue.
            return [Send(CONTROL, {"type": "resume", "token": self.resume_token, "id": "resume"})]
        if self.name:
            sends.append(Send(CONTROL, {"type": "hello", "name": self.name}))
        # The server queues new clients unless told not to: ask anyway, and
        # ignore the "already queued" this gets when it did.
        sends.append(Send(CONTROL, {"type": "queue", "id": "auto-queue"}))
        return sends

    def _on_resumed(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        if self._held_says is not None:
            self._release_says()
        self.resuming = False
        self.me = body["you"]
        self.names[self.me] = self.name or self.me
        self.lobby = body["channel"]
        self.players = tuple(body["players"])
        self.resume_token = body.get("resume")
        self.stage = Stage.PLAYING
        self.say("back in the game: your seat was kept")
        sends = []
        if self.name:
            sends.append(Send(CONTROL, {"type": "hello", "name": self.name}))
        return sends

    def _on_away(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(
            f"{self.who(body['player'])} lost the connection; the seat is held "
            f"{body.get('hold', 0):g} s"
        )

    def _on_back(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(f"{self.who(body['player'])} is back")

    def _on_hurry(self, channel: str, body: Mapping[str, Any]) -> None:
        if channel == self.lobby and self.my_move is None:
            self.hurried = True
            self.say(f"{body.get('remaining', 0):g} s left — hurry! [r]ock [p]aper [s]cissors")

    def _on_members(self, channel: str, body: Mapping[str, Any]) -> None:
        names = [m.get("name") or m.get("client") for m in body.get("members", [])]
        self.say(f"{plural(body.get('count', 0), 'member')} on {channel}: {join_names(names) or 'nobody'}")

    def _on_joined(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(f"{body.get('name') or body.get('client')} joined {channel}")

    def _on_parted(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(f"{self.who(body.get('client', '?'))} left {channel}")

    def _on_games(self, channel: str, body: Mapping[str, Any]) -> None:
        games = body.get("games", [])
        if not games:
            self.say("no game is running")
        for game in games:
            names = [game.get("names", {}).get(p, p) for p in game.get("players", [])]
            self.say(
                f"{game['channel']}: {join_names(names)}, round {game.get('round', 0)}, "
                f"{plural(game.get('watchers', 0), 'watcher')} — /watch {game['channel']}"
            )

    def _on_watching(self, channel: str, body: Mapping[str, Any]) -> None:
        self.watching = channel
        self.say(f"watching {channel}: /unwatch to stop")

    def _on_unwatched(self, channel: str, body: Mapping[str, Any]) -> None:
        self.watching = None
        self.say(f"stopped watching {channel}")

    def _on_queued(self, channel: str, body: Mapping[str, Any]) -> None:
        missing = body["lobby_size"] - body["waiting"]
        waiting = (
            f"waiting for {missing} more player{'s' if missing != 1 else ''}…"
            if missing > 0
            else "a lobby is forming…"
        )
        if not self.greeted:
            self.greeted = True
            self.say(f"connected to {self.server} as {self.names[self.me]} — {waiting}")
        else:
            self.say(f"queued — {waiting}")
        self.stage = Stage.QUEUED

    def _on_unqueued(self, channel: str, body: Mapping[str, Any]) -> None:
        if self.stage is Stage.QUEUED:
            self.stage = Stage.IDLE
        self.say("you left the queue")

    def _on_matched(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        self.resume_token = body.get("resume")
        self.lobby = body["channel"]
        self.players = tuple(body["players"])
        for player, name in body.get("names", {}).items():
            if player != self.me:
                self.names.setdefault(player, name)
        self.stage = Stage.PLAYING
        if self._names_missing():
            # Players matched the moment they connect have not told their
            # names yet: they do so on the lobby channel, at once.  Wait a
            # moment for them, to say "with bob" rather than an id.
            self._held_says = []
            self._release = self.clock.callLater(self.NAME_WAIT, self._release_says)
        else:
            self.say(self._matched_line())
        if self.name:
            # Tell the others our name (they may have been matched before
            # our hello reached the server).
            return [Send(self.lobby, {"type": "publish", "data": {"name": self.name}})]
        return []

    def _on_round(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        if channel != self.lobby:
            if channel == self.watching:
                self.say(f"{channel}: round {body['round']}")
            return []
        self.hurried = False
        self.round = body["round"]
        self.deadline = self.clock.seconds() + body["timeout"]
        self.my_move = None
        self.moved = set()
        self.stage = Stage.MOVING
        self.say(
            f"round {self.round} — your move [r]ock [p]aper [s]cissors — "
            f"{self.seconds_left()} s"
        )
        if self._held_moves:
            return self._move(self._held_moves.pop(0))
        return []

    COMMANDS = (
        "/games", "/help", "/ping", "/pub", "/queue", "/quit", "/stats",
        "/sub", "/unqueue", "/unsub", "/unwatch", "/watch", "/who",
    )
    """What Tab completes a line starting with C{/} to."""

    def completions(self, text: str) -> list[str]:
        """
        The lines a Tab may complete C{text} to: a command, or, after a
        command that takes one, a channel this client knows.
        """
        if not text.startswith("/"):
            return []
        command, space, arg = text.partition(" ")
        if not space:
            return [c for c in self.COMMANDS if c.startswith(command)]
        if command not in ("/pub", "/unsub", "/who", "/watch", "/sub") or " " in arg:
            return []
        known = sorted(self.subscriptions | ({self.lobby} if self.lobby else set()))
        return [f"{command} {c}" for c in known if c.startswith(arg)]

    @property
    def alert(self) -> bool:
        """
        Whether the prompt should stand out: told to hurry, not moved yet.
        """
        return self.hurried and self.stage is Stage.MOVING and self.my_move is None

    def _move(self, shape: str) -> list[Send]:
        assert self.lobby is not None
        self.my_move = shape
        return [Send(self.lobby, {"type": "move", "move": shape})]

    def _on_moved(self, channel: str, body: Mapping[str, Any]) -> None:
        player = body["player"]
        self.moved.add(player)
        if player == self.me:
            waiting = [self.who(p) for p in self.players if p not in self.moved]
            if waiting:
                self.say(
                    f"you played {self.my_move}, waiting for "
                    f"{join_names(waiting)}… ({self.seconds_left()} s left)"
                )
        else:
            self.say(f"{self.who(player)} has played")

    def _on_result(self, channel: str, body: Mapping[str, Any]) -> None:
        self.deadline = None
        if self.stage is Stage.MOVING:
            self.stage = Stage.PLAYING
        moves: dict[str, str | None] = body["moves"]
        if moves.get(self.me) is None:
            self.say("you did not play in time")
        self.say(f"round {body['round']}: {self.round_sentence(moves, body['winners'])}")

    def round_sentence(self, moves: Mapping[str, str | None], winners: Sequence[str]) -> str:
        """
        One round's outcome, from this player's point of view.
        """
        others = []
        for player, move in moves.items():
            if player != self.me:
                did = f"played {move}" if move else "did not play"
                others.append(f"{self.who(player)} {did}")
        if self.me in winners:
            also = [self.who(p) for p in winners if p != self.me]
            outcome = "you win" + (f" (with {join_names(also)})" if also else "")
        elif winners:
            names = [self.who(p) for p in winners]
            outcome = f"{join_names(names)} win{'s' if len(names) == 1 else ''}"
            if len(moves) == 2:
                outcome = "you lose"
        elif all(moves.values()):
            outcome = "draw" if len(moves) == 2 else "nobody wins"
        else:
            outcome = "nobody wins"
        return f"{join_names(others)} — {outcome}"

    def _on_game_over(self, channel: str, body: Mapping[str, Any]) -> None:
        if channel != self.lobby:
            if channel == self.watching:
                self.say(f"{channel}: game over, winners {join_names([self.who(p) for p in body['winners']]) or 'none'}")
            return
        self.resume_token = None
        self.deadline = None
        scores = body["scores"]
        winners = body["winners"]
        reason = body["reason"]
        table = ", ".join(f"{self.names.get(p, p)} {s}" for p, s in scores.items())
        if reason == "shutdown":
            self.say("game over — the server is shutting down")
            self.stage = Stage.IDLE
            return
        if self.me in winners:
            verdict = "you won" if len(winners) == 1 else "you tied for first"
        elif winners:
            verdict = f"{join_names([self.who(p) for p in winners])} won"
        else:
            verdict = "nobody won"
        if reason == "player_left":
            verdict = "the others left; " + verdict
        self.say(f"game over — {verdict}: {table}. Play again? [y/n]")
        self.stage = Stage.ASKING

    def _on_closed(self, channel: str, body: Mapping[str, Any]) -> None:
        if channel == self.lobby:
            self.lobby = None
            if self.stage in (Stage.PLAYING, Stage.MOVING):
                self.stage = Stage.IDLE
                self.say("the lobby closed; /queue to find another, /quit to leave")

    def _on_left(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(f"{self.who(body['player'])} left the game")

    def _on_message(self, channel: str, body: Mapping[str, Any]) -> None:
        sender = body.get("from", "?")
        data = body.get("data")
        if channel == self.lobby and isinstance(data, dict) and set(data) == {"name"}:
            if isinstance(data["name"], str) and sender in self.players:
                old = self.who(sender)
                self.names[sender] = data["name"]
                if self._held_says is not None:
                    if not self._names_missing():
                        self._release_says()
                elif old != data["name"]:
                    self.say(f"({old} is {data['name']})")
                return
        where = "lobby" if channel == self.lobby else channel
        self.say(f"[{where}] {self.who(sender)}: {describe(data)}")

    def _on_subscribed(self, channel: str, body: Mapping[str, Any]) -> None:
        self.subscriptions.add(channel)
        members = body.get("members")
        self.say(f"subscribed to {channel} ({members} member{'s' if members != 1 else ''})")

    def _on_unsubscribed(self, channel: str, body: Mapping[str, Any]) -> None:
        self.subscriptions.discard(channel)
        self.say(f"unsubscribed from {channel}")

    def _on_published(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(f"published on {channel} to {body['receivers']} receiver(s)")

    def _on_pong(self, channel: str, body: Mapping[str, Any]) -> None:
        sent = self._pings.pop(str(body.get("id")), None)
        if sent is not None:
            self.say(f"pong in {(self.clock.seconds() - sent) * 1000:.1f} ms")

    def _on_ping(self, channel: str, body: Mapping[str, Any]) -> list[Send]:
        return [Send(CONTROL, {"type": "pong"})]

    def _on_hello(self, channel: str, body: Mapping[str, Any]) -> None:
        self.names[self.me] = body["name"]

    def _on_stats(self, channel: str, body: Mapping[str, Any]) -> None:
        self.say(
            f"server: {plural(body['clients'], 'client')} here, {body['host_clients']} on "
            f"the host (max {body['max_clients']}), {body['queued']} queued, "
            f"{plural(body['lobbies'], 'lobby', 'lobbies')}, "
            f"{plural(body['channels'], 'channel')}"
        )

    def _on_bye(self, channel: str, body: Mapping[str, Any]) -> None:
        self.farewell = str(body.get("reason", "no reason given"))
        self.say(f"the server is going away ({self.farewell})")

    def _on_error(self, channel: str, body: Mapping[str, Any]) -> None:
        if body.get("id") == "auto-queue" and body.get("code") in ("already_queued", "in_game"):
            return
        if body.get("id") == "resume":
            self.resuming = False
            self.seat_lost = True
            self.resume_token = None
            self.say("your seat is gone (the game went on without you)")
            return
        where = f" on {channel}" if channel and channel != self.lobby else ""
        self.say(f"error{where}: {body.get('message', body.get('code'))}")

    # What the person types

    def typed(self, line: str) -> list[Send] | Quit:
        """
        Take one line the person typed; return the frames to send, or
        L{Quit}.
        """
        text = line.strip()
        if not text:
            return []
        if text.startswith("/"):
            return self._command(text)
        word = text.lower()
        if self.stage is Stage.ASKING and word in ("y", "yes", "n", "no"):
            self.stage = Stage.IDLE
            if word.startswith("y"):
                return [Send(CONTROL, {"type": "queue"})]
            if self.subscriptions:
                # Still on channels: stay for them.
                self.say(
                    f"staying on {join_names(sorted(self.subscriptions))}; "
                    "/queue to play again, /quit to leave"
                )
                return []
            return Quit()
        if word in MOVE_KEYS:
            if self.stage is Stage.MOVING and self.my_move is None:
                return self._move(MOVE_KEYS[word])
            if self.hold_moves:
                # A script types ahead: this move is for the next round.
                self._held_moves.append(MOVE_KEYS[word])
                return []
            if self.stage is Stage.MOVING:
                self.say(f"you already played {self.my_move} this round")
                return []
        if self.lobby is not None:
            return [Send(self.lobby, {"type": "publish", "data": text})]
        self.say("you are not in a lobby; type /help for the commands")
        return []

    def _command(self, text: str) -> list[Send] | Quit:
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command in ("/quit", "/exit"):
            return Quit()
        if command == "/help":
            self.say(HELP)
            return []
        if command == "/queue":
            return [Send(CONTROL, {"type": "queue"})]
        if command == "/unqueue":
            return [Send(CONTROL, {"type": "unqueue"})]
        if command == "/stats":
            return [Send(CONTROL, {"type": "stats"})]
        if command == "/ping":
            self._next_id += 1
            ping_id = f"ping-{self._next_id}"
            self._pings[ping_id] = self.clock.seconds()
            return [Send(CONTROL, {"type": "ping", "id": ping_id})]
        if command == "/games":
            return [Send(CONTROL, {"type": "games"})]
        if command in ("/who", "/watch") and is_channel_name(rest):
            return [Send(rest, {"type": "who" if command == "/who" else "watch"})]
        if command in ("/who", "/watch"):
            self.say(f"usage: {command} CHANNEL")
            return []
        if command == "/unwatch":
            if self.watching is None:
                self.say("you are not watching a game")
                return []
            return [Send(self.watching, {"type": "unwatch"})]
        if command in ("/sub", "/unsub", "/pub"):
            channel, _, message = rest.partition(" ")
            if not is_channel_name(channel) or (message and command != "/pub"):
                self.say(f"usage: {command} CHANNEL{' TEXT' if command == '/pub' else ''} "
                         "(a channel name is 1-64 of A-Z a-z 0-9 _ . : -)")
                return []
            if command == "/sub":
                return [Send(channel, {"type": "subscribe"})]
            if command == "/unsub":
                return [Send(channel, {"type": "unsubscribe"})]
            return [Send(channel, {"type": "publish", "data": message})]
        self.say(f"unknown command {command}; type /help")
        return []

    # For the screen

    def seconds_left(self) -> int:
        """
        Whole seconds left in the round (rounded up), or 0.
        """
        if self.deadline is None:
            return 0
        left = round(self.deadline - self.clock.seconds(), 3)
        return max(0, math.ceil(left))

    @property
    def has_held_moves(self) -> bool:
        """
        Whether moves typed ahead wait for a round.
        """
        return bool(self._held_moves)

    def status(self) -> str:
        """
        A short line for the prompt: what the player is waiting for.
        """
        if self.stage is Stage.MOVING and self.my_move is None:
            hurry = "HURRY " if self.hurried else ""
            return f"round {self.round}, {self.seconds_left()} s — {hurry}r/p/s"
        if self.stage is Stage.MOVING:
            return f"round {self.round}, {self.seconds_left()} s — waiting"
        if self.stage is Stage.QUEUED:
            return "queued"
        if self.stage is Stage.ASKING:
            return "play again? y/n"
        if self.stage is Stage.PLAYING:
            return "in lobby"
        return ""

    def who(self, player: str) -> str:
        """
        A player's display name.
        """
        if player == self.me:
            return "you"
        return self.names.get(player, player)

"""
Seat hold and resume, spectators and bots through real sockets against a
real daemon: a player whose connection dies with a RST takes its seat back
from a new connection; past the hold its token is refused; a spectator
watches a whole game; a lonely player gets bots; a browser page reloaded
mid-round takes its seat back.
"""

from __future__ import annotations

import socket
import struct

from tests.daemon import Client, Daemon, DaemonTestCase


def reset(client: Client) -> None:
    """
    Close with a RST, as a crashed process or a lost network does.
    """
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


class ResumeOverSocketsTests(DaemonTestCase):
    def pair(self, daemon: Daemon):
        alice, bob = daemon.client(), daemon.client()
        self.addCleanup(alice.close)
        self.addCleanup(bob.close)
        [(_, a)] = alice.expect("welcome")
        [(_, b)] = bob.expect("welcome")
        alice.expect("queued")
        bob.expect("queued")
        [(_, matched)] = alice.expect("matched")
        bob.expect("matched")
        alice.expect("round")
        bob.expect("round")
        return alice, bob, matched

    def test_rst_then_resume_within_hold(self) -> None:
        daemon = self.start("--hurry", "0")
        alice, bob, matched = self.pair(daemon)
        lobby, alice_id = matched["channel"], matched["you"]
        reset(alice)
        [(_, away)] = bob.expect("away")
        self.assertEqual((away["player"], away["hold"]), (alice_id, 30.0))
        bob.send(lobby + ';{"type":"move","move":"rock"}')
        bob.expect("moved")
        again = daemon.client()
        self.addCleanup(again.close)
        again.expect("welcome", "queued")
        again.send(';{"type":"resume","token":"%s","id":"r"}' % matched["resume"])
        frames = again.expect("resumed", "round", "moved")
        resumed = frames[0][1]
        self.assertEqual((resumed["you"], resumed["channel"], resumed["id"]), (alice_id, lobby, "r"))
        self.assertLess(frames[1][1]["timeout"], 10.0)
        bob.expect("back")
        again.send(lobby + ';{"type":"move","move":"paper"}')
        frames = again.expect("moved", "result", "game_over", "closed")
        self.assertEqual(frames[1][1]["winners"], [alice_id])
        bob.expect("moved", "result", "game_over", "closed")

    def test_past_the_hold(self) -> None:
        daemon = self.start("--seat-hold", "1", "--hurry", "0")
        alice, bob, matched = self.pair(daemon)
        reset(alice)
        bob.expect("away")
        frames = bob.expect("left", "game_over", "closed")
        self.assertEqual(frames[1][1]["reason"], "player_left")
        late = daemon.client()
        self.addCleanup(late.close)
        late.expect("welcome", "queued")
        late.send(';{"type":"resume","token":"%s"}' % matched["resume"])
        [(_, error)] = late.expect("error")
        self.assertEqual(error["code"], "bad_token")

    def test_spectator_watches_a_game(self) -> None:
        daemon = self.start("--hurry", "0", "--rounds", "2")
        alice, bob, matched = self.pair(daemon)
        lobby = matched["channel"]
        eve = daemon.client()
        self.addCleanup(eve.close)
        eve.expect("welcome", "queued")
        eve.send(';{"type":"games"}')
        [(_, games)] = eve.expect("games")
        self.assertEqual(games["games"][0]["channel"], lobby)
        eve.send(lobby + ';{"type":"watch"}')
        [(_, watching), (_, round_)] = eve.expect("watching", "round")
        self.assertEqual(watching["players"], matched["players"])
        for shapes in (("rock", "scissors"), ("paper", "paper")):
            alice.send(lobby + ';{"type":"move","move":"%s"}' % shapes[0])
            seen = eve.expect("moved")
            self.assertNotIn(shapes[0], str(seen))
            bob.send(lobby + ';{"type":"move","move":"%s"}' % shapes[1])
            eve.expect("moved", "result")
            if shapes[0] == "rock":
                eve.expect("round")
        eve.expect("game_over", "closed")

    def test_bots_for_a_lonely_player(self) -> None:
        daemon = self.start("--bot-after", "1", "--move-timeout", "2", "--hurry", "0")
        alone = daemon.client()
        self.addCleanup(alone.close)
        alone.expect("welcome", "queued")
        [(_, matched)] = alone.expect("matched")
        self.assertEqual(len(matched["bots"]), 1)
        lobby = matched["channel"]
        alone.expect("round")
        alone.send(lobby + ';{"type":"move","move":"rock"}')
        frames = [alone.read() for _ in range(5)]
        self.assertEqual(sorted(b["type"] for _, b in frames), ["closed", "game_over", "moved", "moved", "result"])
        result = [b for _, b in frames if b["type"] == "result"][0]
        self.assertEqual(result["timed_out"], [])
        alone.send(';{"type":"queue"}')
        alone.expect("queued")

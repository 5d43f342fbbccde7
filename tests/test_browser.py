"""
The browser page in a real browser: headless Chromium (Debian's package)
driven by Selenium, against a real daemon on 127.0.0.1, with TCP clients in
the same lobbies and channels.  The screenshots in C{docs/screenshots/} are
made by these tests.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from tests.browser import Browser
from tests.daemon import CHECKOUT, Client, Daemon

SCREENSHOTS = CHECKOUT / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def skip_names(client: Client) -> dict:
    """
    The next frame that is not a page telling its name.
    """
    while True:
        _, body = client.read()
        if body["type"] != "message":
            return body


class BrowserCase(SynchronousTestCase):
    def start(self, *args: str, web: str = "tcp:0:interface=127.0.0.1") -> Daemon:
        daemon = Daemon(self.mktemp(), "--web", web, *args)
        self.addCleanup(daemon.stop)
        return daemon

    def browser(self, daemon: Daemon, name: str | None = None, **size: int) -> Browser:
        browser = Browser(**size)
        self.addCleanup(browser.close)
        browser.open(f"http://127.0.0.1:{daemon.web_port}/")
        browser.wait_text("status", "connected")
        browser.wait_text("me", "Connected as")
        if name:
            browser.type_into("name", name)
            browser.click("name-button")
            browser.wait_text("me", f"You are {name}")
        return browser

    def tcp(self, daemon: Daemon) -> Client:
        client = daemon.client()
        self.addCleanup(client.close)
        return client


class GameInBrowsersTests(BrowserCase):
    def test_two_browsers_play_twice(self) -> None:
        """
        Two windows queue, are matched with each other's names, see the
        countdown, play, both see the right result and the game over, and
        play again.
        """
        daemon = self.start("--no-auto-queue")
        alice = self.browser(daemon, "alice")
        bob = self.browser(daemon, "bob", width=420, height=900)  # a phone
        for browser in (alice, bob):
            browser.click("queue-button")
        alice.wait_text("opponents", "bob")
        bob.wait_text("opponents", "alice")
        for game in (1, 2):
            for browser in (alice, bob):
                browser.wait_text("round-label", "Round 1")
                browser.wait(lambda b=browser: b.text("countdown").isdigit()
                             and 1 <= int(b.text("countdown")) <= 10, "a live countdown")
            alice.click("move-paper")
            bob.wait(lambda: "moved" in bob.find("players").get_attribute("innerHTML"),
                     "alice shown as moved")
            if game == 1:
                bob.screenshot(str(SCREENSHOTS / "game-in-progress.png"))
            bob.click("move-rock")
            for browser in (alice, bob):
                result = browser.wait_text("results", "Round 1:")
                self.assertIn("alice paper", result)
                self.assertIn("bob rock", result)
                over = browser.wait_text("game-over-text", "Game over")
                self.assertIn("Winner: alice", over)
            self.assertIn("you win", alice.text("results"))
            self.assertIn("alice wins", bob.text("results"))
            if game == 1:
                alice.screenshot(str(SCREENSHOTS / "game-result.png"))
                for browser in (alice, bob):
                    browser.click("play-again")
                for browser in (alice, bob):
                    browser.wait(lambda b=browser: b.text("results") == "", "a new game")

    def test_keys_and_tcp_player(self) -> None:
        """
        A browser and a TCP client play in one lobby; the browser moves
        with the keyboard.
        """
        daemon = self.start()
        browser = self.browser(daemon, "carol")
        telnet = self.tcp(daemon)
        [(_, welcome)] = telnet.expect("welcome")
        telnet.expect("queued")
        [(_, matched)] = telnet.expect("matched")
        telnet.expect("round")
        self.assertEqual(matched["names"][matched["players"][0]], "carol")
        browser.wait_text("round-label", "Round 1")
        browser.find("countdown").click()  # focus the page, not a field
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(browser.driver).send_keys("s").perform()
        [(_, told)] = telnet.expect("message")  # the page says its name
        self.assertEqual(told["data"], {"name": "carol"})
        [(_, moved)] = telnet.expect("moved")
        self.assertEqual(moved["player"], matched["players"][0])
        telnet.send(matched["channel"] + ';{"type":"move","move":"paper"}')
        frames = telnet.expect("moved", "result", "game_over", "closed")
        self.assertEqual(frames[1][1]["winners"], [matched["players"][0]])
        result = browser.wait_text("results", "Round 1:")
        self.assertIn("carol scissors", result)
        self.assertIn(f"{welcome['client']} paper", result)
        self.assertIn("you win", result)


class ChatInBrowserTests(BrowserCase):
    def test_chat_with_tcp_client(self) -> None:
        daemon = self.start("--no-auto-queue")
        browser = self.browser(daemon, "dora")
        telnet = self.tcp(daemon)
        [(_, welcome)] = telnet.expect("welcome")
        telnet.send('lounge;{"type":"subscribe"}')
        telnet.expect("subscribed")
        browser.type_into("chat-channel", "lounge")
        browser.click("chat-join")
        browser.wait_text("channels", "#lounge")
        browser.wait_text("chat-log", "joined #lounge (2 here)")
        browser.type_into("chat-text", "hello from the browser")
        browser.click("chat-send")
        [(channel, message)] = telnet.expect("message")
        self.assertEqual((channel, message["data"]), ("lounge", "hello from the browser"))
        telnet.send('lounge;{"type":"publish","data":"hello from telnet <b>"}')
        log = browser.wait_text("chat-log", "hello from telnet <b>")
        self.assertIn(f"{welcome['client']}: hello from telnet <b>", log)
        # Leaving the channel.
        browser.find("channels").find_element("css selector", "button.leave").click()
        browser.wait_text("chat-log", "left #lounge")
        telnet.send('lounge;{"type":"publish","data":"anyone?","id":1}')
        self.assertEqual(telnet.expect("published")[0][1]["receivers"], 0)

    def test_errors_in_words(self) -> None:
        daemon = self.start("--no-auto-queue")
        browser = self.browser(daemon)
        browser.type_into("name", "   x" * 20)  # too long for the server
        browser.driver.execute_script("document.getElementById('name').removeAttribute('maxlength')")
        browser.type_into("name", "y" * 40)
        browser.click("name-button")
        self.assertIn("bad json: a name is 1 to 32", browser.wait_text("error", "bad json"))


class ReconnectTests(BrowserCase):
    def test_server_restart(self) -> None:
        """
        The page shows that it is disconnected when the server goes away,
        and reconnects by itself when it is back.
        """
        port = free_port()
        web = f"tcp:{port}:interface=127.0.0.1"
        daemon = Daemon(self.mktemp(), "--web", web, "--no-auto-queue")
        browser = self.browser(daemon)
        first = browser.text("me")
        daemon.stop()
        browser.wait(lambda: browser.find("status").get_attribute("data-state") == "disconnected",
                     "the disconnected state")
        self.assertIn("reconnecting", browser.text("status"))
        again = self.start("--no-auto-queue", web=web)
        browser.wait(lambda: browser.find("status").get_attribute("data-state") == "connected",
                     "the connected state", timeout=40)
        browser.wait(lambda: browser.text("me") != first and "Connected as" in browser.text("me"),
                     "a new welcome")
        self.assertEqual(again.web_port, port)


class ResumeInBrowserTests(BrowserCase):
    def test_reload_mid_round_keeps_the_seat(self) -> None:
        """
        A browser tab reloaded mid-round takes its seat back (the resume
        token survives the reload) and finishes the game.
        """
        daemon = self.start("--hurry", "0")
        browser = self.browser(daemon, "erin")
        telnet = self.tcp(daemon)
        telnet.expect("welcome", "queued")
        [(_, matched)] = telnet.expect("matched")
        telnet.expect("round")
        erin = matched["players"][0]
        browser.wait_text("round-label", "Round 1")
        browser.driver.refresh()
        self.assertEqual(skip_names(telnet)["type"], "away")
        browser.wait_text("results", "your seat was kept")
        browser.wait_text("round-label", "Round 1")
        self.assertEqual(skip_names(telnet)["type"], "back")
        browser.click("move-rock")
        moved = skip_names(telnet)
        self.assertEqual((moved["type"], moved["player"]), ("moved", erin))
        telnet.send(matched["channel"] + ';{"type":"move","move":"scissors"}')
        self.assertIn("you win", browser.wait_text("results", "Round 1:"))

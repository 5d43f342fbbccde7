"""
Tests for L{soukets.client.cli}: addresses and options.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from soukets.client.cli import ClientOptions, options_first, parse_address


class AddressTests(SynchronousTestCase):
    def test_forms(self) -> None:
        for text, expected in (
            ("127.0.0.1", ("127.0.0.1", 7777)),
            ("example.org:7000", ("example.org", 7000)),
            (":7000", ("127.0.0.1", 7000)),
            ("19200", ("127.0.0.1", 19200)),
            ("[::1]:7777", ("::1", 7777)),
            ("[::1]", ("::1", 7777)),
            ("[2001:db8::5]:80", ("2001:db8::5", 80)),
        ):
            self.assertEqual(parse_address(text), expected, text)

    def test_refused_in_one_line(self) -> None:
        for text in ("::1", "a:b:c", "host:0", "host:65536", "host:http", "[::1"):
            error = self.assertRaises(usage.UsageError, parse_address, text)
            self.assertNotIn("\n", str(error))

    def test_options(self) -> None:
        options = ClientOptions()
        options.parseOptions(options_first(["[::1]:7000", "--tls", "--ca", "x.pem"]))
        self.assertEqual((options["host"], options["port"], options["address"]), ("::1", 7000, "[::1]:7000"))
        self.assertTrue(options["tls"])
        for bad in (["--insecure"], ["--ca", "x.pem"], ["--tls", "--insecure", "--ca", "x"]):
            self.assertRaises(usage.UsageError, ClientOptions().parseOptions, bad)

"""
soukets: a real-time channel server on Twisted, with matchmaking and games.

The sans-IO core (L{soukets.frames}, L{soukets.hub}, L{soukets.matchmaking},
L{soukets.games}) knows nothing of sockets or reactors; L{soukets.session},
L{soukets.lobby} and L{soukets.server} hold one server's state;
L{soukets.transports} (TCP lines, WebSocket), L{soukets.web} (the site)
and L{soukets.service} connect it all to Twisted.
"""

__version__ = "0.1.0"

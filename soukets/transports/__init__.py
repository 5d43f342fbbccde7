"""
The ways clients reach a soukets server, side by side: raw TCP lines
(L{soukets.transports.tcp}) and WebSocket messages
(L{soukets.transports.websocket}).

Each transport is a thin adapter.  What a connection goes through whatever
its transport (admission through the host counter, its session, what it is
owed until it is written, the slow-reader cut, the end) is
L{soukets.transports.connection}; a transport only says how bytes come in,
how frames go out and how the connection closes.
"""

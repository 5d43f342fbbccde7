"""
Draws docs/architecture.svg, the module map of docs/architecture.rst, from
the boxes and arrows below (no drawing tool needed):

    python docs/architecture.py > docs/architecture.svg

tests/test_docs.py checks that the committed SVG is what this draws.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

# name: (column, row, label, layer)
BOXES = {
    "tcp": (0, 0, "transports/tcp.py", "adapter"),
    "websocket": (1, 0, "transports/websocket.py", "adapter"),
    "web": (2, 0, "web.py (/, /ws, /metrics)", "adapter"),
    "connection": (0.5, 1, "transports/connection.py", "adapter"),
    "counter": (2, 1, "counter.py (host cap)", "adapter"),
    "session": (0.5, 2, "session.py", "core"),
    "server": (2, 2, "server.py", "core"),
    "frames": (0, 3, "frames.py", "core"),
    "hub": (1, 3, "hub.py + outbox.py", "core"),
    "lobby": (2, 3, "lobby.py + matchmaking.py", "core"),
    "games": (2, 4, "games/ (rps, chat, plugins)", "core"),
    "redis": (1, 4, "engines/redis.py (Redis)", "adapter"),
    "cluster": (0, 4, "engines/cluster.py", "core"),
}
ARROWS = [
    ("tcp", "connection"),
    ("websocket", "connection"),
    ("web", "websocket"),
    ("connection", "counter"),
    ("connection", "session"),
    ("server", "session"),
    ("session", "frames"),
    ("session", "hub"),
    ("session", "lobby"),
    ("lobby", "hub"),
    ("lobby", "games"),
    ("hub", "redis"),
    ("lobby", "redis"),
    ("redis", "cluster"),
]
WIDTH, HEIGHT, GAP_X, GAP_Y = 220, 44, 40, 36
COLOURS = {"adapter": "#dbe8fb", "core": "#e3f4e1"}


def centre(name: str) -> tuple[float, float]:
    column, row, _, _ = BOXES[name]
    return 20 + column * (WIDTH + GAP_X) + WIDTH / 2, 20 + row * (HEIGHT + GAP_Y) + HEIGHT / 2


def draw() -> str:
    columns = max(b[0] for b in BOXES.values()) + 1
    rows = max(b[1] for b in BOXES.values()) + 1
    width = int(40 + columns * WIDTH + (columns - 1) * GAP_X)
    height = int(40 + rows * HEIGHT + (rows - 1) * GAP_Y + 30)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        "<title>soukets: the transports and engines around the sans-IO core</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>',
    ]
    for start, end in ARROWS:
        (x1, y1), (x2, y2) = centre(start), centre(end)
        if abs(y2 - y1) > 1:  # leave from the bottom, arrive at the top
            y1 += HEIGHT / 2 * (1 if y2 > y1 else -1)
            y2 -= HEIGHT / 2 * (1 if y2 > y1 else -1)
        else:
            x1 += WIDTH / 2 * (1 if x2 > x1 else -1)
            x2 -= WIDTH / 2 * (1 if x2 > x1 else -1)
        out.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
            'stroke="#444" marker-end="url(#arrow)"/>'
        )
    for name, (column, row, label, layer) in BOXES.items():
        x = 20 + column * (WIDTH + GAP_X)
        y = 20 + row * (HEIGHT + GAP_Y)
        out.append(
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{WIDTH}" height="{HEIGHT}" rx="8" '
            f'fill="{COLOURS[layer]}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{x + WIDTH / 2:.0f}" y="{y + HEIGHT / 2 + 5:.0f}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append(
        f'<text x="20" y="{height - 12}">blue: Twisted adapters (I/O); '
        "green: the sans-IO core (no sockets, time injected)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(draw(), end="")

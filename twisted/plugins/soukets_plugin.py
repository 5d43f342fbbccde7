"""
The twistd dropins: C{twistd soukets [options]} runs the soukets daemon;
C{twistd --reactor=soukets ...} runs it on L{soukets.reactor}.
"""

from twisted.application.reactors import Reactor
from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class SouketsServiceMaker:
    """
    Makes the soukets daemon's service from its command line.  Imports are
    deferred so that listing twistd's plugins stays cheap.
    """

    tapname = "soukets"
    description = "A real-time channel server with matchmaking and games."

    @property
    def options(self):
        import soukets.options

        # (An earlier soukets run beside this one, as bench/run.py
        # --baseline does, may find this plugin first: it has no
        # CommandLine.)
        return getattr(soukets.options, "CommandLine", soukets.options.Options)

    def makeService(self, options):
        from soukets.service import make_service

        return make_service(options)


soukets = SouketsServiceMaker()

souketsReactor = Reactor(
    "soukets",
    "soukets.reactor",
    "epoll, without the legacy log context around each ready descriptor (Linux)",
)

"""The numbers both ends of the multiplexed WebSocket protocol (``/v1/ws``, ``docs/websocket.md``) agree on.

The server (:mod:`muxtrio.server.ws_mux`) and the client library (:mod:`muxtrio.client`) read them from here, so
neither imports the other. Pure: constants only.
"""

from __future__ import annotations

DEFAULT_WINDOW = 1024
"""Events a stream may have in flight (sent by the server, not yet taken by the consumer). 1024, not 64: since the
upstream read hands over everything one socket read delivered (hundreds of events), a 64-event window cut each read
into credit-sized messages and stalled the stream for a credit round trip each time; ``/v1/ws`` then cost ~1.25x
the gateway CPU per event of SSE (perf/README.md, "WebSocket credit window")."""
MAX_WINDOW = 4096
"""The largest window the server accepts for one stream."""

"""The numbers both ends of the multiplexed WebSocket protocol (``/v1/ws``, ``docs/websocket.md``) agree on.

The server (:mod:`muxtrio.server.ws_mux`) and the client library (:mod:`muxtrio.client`) read them from here, so
neither imports the other. Pure: constants only.
"""

from __future__ import annotations

DEFAULT_WINDOW = 64
"""Events a stream may have in flight (sent by the server, not yet taken by the consumer)."""
MAX_WINDOW = 4096
"""The largest window the server accepts for one stream."""

"""The services: one per capability, composed from ``Settings`` by ``Services`` (the composition root).

The API, the web pages and the CLI sit on top of these and nothing below imports them.
"""

from chartvault.services.caller import Caller
from chartvault.services.root import Parts, Services

__all__ = ["Caller", "Parts", "Services"]

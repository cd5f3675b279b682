"""The live viewer: a page a person opens to watch and use a session's browser, over CDP.

Knows nothing of MCP: a tool mints a link (``Viewers.mint``) and hands its URL on; the
transports serve ``Viewers.routes()``. See ``viewers.py`` for the link rules.
"""

from .viewers import Admit, ViewerLink, Viewers, ViewerUnavailable, origin_of

__all__ = ["Admit", "ViewerLink", "ViewerUnavailable", "Viewers", "origin_of"]

"""The MCP tools: ``sessions`` (the session API), ``pages`` (browsing a session over CDP),
``snapshots`` (the page outline and find), the shared plumbing in ``_common``, and the sentences
a model reads on failure in ``errors``."""

from ._common import ConversationOf, SessionPages
from .pages import PageTools
from .sessions import SessionTools
from .snapshots import SnapshotTools

__all__ = ["ConversationOf", "PageTools", "SessionPages", "SessionTools", "SnapshotTools"]

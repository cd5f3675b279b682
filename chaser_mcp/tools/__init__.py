"""The MCP tools: ``sessions`` (the session API), ``pages`` (browsing a session over CDP),
``snapshots`` (the page outline and find), ``waiting`` (wait_for), ``one_call`` (screenshot_url,
read_url), ``hand_off`` (a person takes over through the live viewer), the shared plumbing in
``_common``, and the sentences a model reads on failure in ``errors``."""

from ._common import ConversationOf, SessionPages
from .acting import ActTools
from .hand_off import HandOffTools
from .one_call import OneCallTools
from .pages import PageTools
from .sessions import SessionTools
from .snapshots import SnapshotTools
from .waiting import WaitTools

__all__ = [
    "ActTools",
    "ConversationOf",
    "HandOffTools",
    "OneCallTools",
    "PageTools",
    "SessionPages",
    "SessionTools",
    "SnapshotTools",
    "WaitTools",
]

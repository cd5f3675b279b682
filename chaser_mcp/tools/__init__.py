"""The MCP tools: ``sessions`` (the session API), ``pages`` (browsing a session over CDP), the
shared plumbing in ``_common``, and the sentences a model reads on failure in ``errors``."""

from ._common import ConversationOf
from .one_call import OneCallTools
from .pages import PageTools
from .sessions import SessionTools
from .waiting import WaitTools

__all__ = ["ConversationOf", "OneCallTools", "PageTools", "SessionTools", "WaitTools"]

"""``hand_off``: a person takes over a session through the live viewer and presses Done; the agent's
call then answers with the page they left. Real Chromium (the session's, and a second one for the
person), real SDK clients with an elicitation callback in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp_types import (
    ElicitRequestParams,
    ElicitRequestURLParams,
    ElicitResult,
    ErrorData,
    InputRequiredResult,
)

from chaser_mcp.viewer import origin_of
from tests.mcp_support import MODES, Mode
from tests.page_support import LocalHarness, PagesSite, new_session
from tests.viewer_support import NAME_FIELD, person_viewing

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


class ScriptedPerson:
    """The elicitation callback of a client whose user opens the link and does what is asked: tap the
    form's field, type, press Done (in a second headless Chromium, as a person would on a phone)."""

    def __init__(
        self, tg: anyio.abc.TaskGroup, *, accept: bool = True, on_asked: Callable[[], object] | None = None
    ) -> None:
        self._tg = tg
        self._accept = accept
        self._on_asked = on_asked
        self.seen_when_asked: list[object] = []  # what ``on_asked`` saw, while the server waited
        self.asked: list[ElicitRequestURLParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        assert isinstance(params, ElicitRequestURLParams)
        self.asked.append(params)
        if self._on_asked is not None:
            self.seen_when_asked.append(self._on_asked())
        if not self._accept:
            return ElicitResult(action="decline")
        self._tg.start_soon(self._work, params.url)
        return ElicitResult(action="accept")

    async def _work(self, url: str) -> None:
        async with person_viewing(url) as person:
            await person.sees_frames()
            await person.tap_session_at(*NAME_FIELD)
            await person.type_text(PASSWORD)
            await anyio.sleep(0.3)  # the typing reaches the page before Done
            await person.press_done()


@pytest.fixture
async def form_session(page_client: Client, pages_site: PagesSite) -> AsyncIterator[str]:
    """A ready local session showing tests/pages/viewer-form.html."""
    session_id = await new_session(page_client)
    opened = await page_client.call_tool(
        "navigate", {"session_id": session_id, "url": pages_site.url("/viewer-form.html")}
    )
    assert not opened.is_error, opened.content
    try:
        yield session_id
    finally:
        await page_client.call_tool("delete_session", {"session_id": session_id})


def answer(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


@pytest.mark.parametrize("mode", MODES)
async def test_a_person_finishes_in_the_viewer_and_hand_off_answers_with_their_page(
    local_mcp_server: LocalHarness, page_client: Client, form_session: str, mode: Mode
) -> None:
    async with anyio.create_task_group() as tg:
        person = ScriptedPerson(tg)
        async with Client(local_mcp_server.server, mode=mode, elicitation_callback=person) as agent:
            with anyio.fail_after(90):
                result = await agent.call_tool(
                    "hand_off", {"session_id": form_session, "reason": "type the password"}
                )
    handed = answer(result)
    page = answer(await page_client.call_tool("read_page", {"session_id": form_session}))

    assert handed["outcome"] == "done" and handed["title"] == "Viewer form"
    assert handed["url"].endswith("/viewer-form.html")
    assert person.asked and person.asked[0].url.startswith("http")
    assert f"Typed: {PASSWORD}" in page["text"]


async def test_a_client_without_elicitation_gets_the_link_and_what_to_tell_the_person(
    page_client: Client, form_session: str
) -> None:
    with anyio.fail_after(30):
        handed = answer(
            await page_client.call_tool("hand_off", {"session_id": form_session, "reason": "log in"})
        )

    assert handed["outcome"] == "link_only" and handed["viewer_url"].startswith("http")
    assert "give them viewer_url" in handed["note"]


async def test_wait_false_answers_at_once_with_the_link(
    local_mcp_server: LocalHarness, form_session: str
) -> None:
    async with anyio.create_task_group() as tg:
        person = ScriptedPerson(tg)
        async with Client(local_mcp_server.server, mode="legacy", elicitation_callback=person) as agent:
            with anyio.fail_after(30):
                handed = answer(
                    await agent.call_tool(
                        "hand_off", {"session_id": form_session, "reason": "look", "wait": False}
                    )
                )

    assert handed["outcome"] == "link_only" and handed["viewer_url"]
    assert person.asked == []  # nobody was asked through the client


@pytest.mark.parametrize("mode", MODES)
async def test_a_person_who_declines_is_reported_and_the_link_stops_working(
    local_mcp_server: LocalHarness, form_session: str, mode: Mode
) -> None:
    async with anyio.create_task_group() as tg:
        person = ScriptedPerson(tg, accept=False)
        async with Client(local_mcp_server.server, mode=mode, elicitation_callback=person) as agent:
            with anyio.fail_after(30):
                handed = answer(
                    await agent.call_tool("hand_off", {"session_id": form_session, "reason": "log in"})
                )

    assert handed["outcome"] == "declined"
    async with httpx2.AsyncClient(timeout=10) as http:
        page = await http.get(person.asked[0].url)
    assert page.status_code in (404, 410)


async def test_a_replayed_request_state_is_refused(local_mcp_server: LocalHarness, form_session: str) -> None:
    async def accept(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept")

    async with Client(local_mcp_server.server, elicitation_callback=accept) as agent:
        arguments = {"session_id": form_session, "reason": "log in", "wait": True}
        first = await agent.session.call_tool("hand_off", arguments, allow_input_required=True)
        assert isinstance(first, InputRequiredResult) and first.request_state and first.input_requests
        asked = first.input_requests["person"].params
        assert isinstance(asked, ElicitRequestURLParams)
        await press_done(asked.url)
        answered = {"person": ElicitResult(action="accept")}
        once = await agent.session.call_tool(
            "hand_off", arguments, input_responses=answered, request_state=first.request_state
        )
        again = await agent.session.call_tool(
            "hand_off", arguments, input_responses=answered, request_state=first.request_state
        )

    assert not once.is_error, once.content
    assert again.is_error and "already answered" in again.content[0].text  # type: ignore[union-attr]


async def test_a_forged_request_state_is_refused(local_mcp_server: LocalHarness, form_session: str) -> None:
    async with Client(local_mcp_server.server) as agent:
        with pytest.raises(Exception, match=r"(?i)state"):
            await agent.session.call_tool(
                "hand_off",
                {"session_id": form_session, "reason": "log in"},
                input_responses={"person": ElicitResult(action="accept")},
                request_state='{"link": "vl_x", "session": "x", "nonce": "n"}',
            )


async def test_the_conversation_does_not_idle_out_while_a_person_works(
    local_mcp_server: LocalHarness, form_session: str
) -> None:
    conversations = local_mcp_server.state.conversations
    client = local_mcp_server.state.client
    async with anyio.create_task_group() as tg:
        person = ScriptedPerson(tg, on_asked=lambda: conversations.open("stdio", client).paused_until)
        async with Client(local_mcp_server.server, mode="legacy", elicitation_callback=person) as agent:
            with anyio.fail_after(90):
                answer(await agent.call_tool("hand_off", {"session_id": form_session, "reason": "type"}))
    after = conversations.open("stdio", client).paused_until

    assert person.seen_when_asked and person.seen_when_asked[0] is not None  # paused while they worked
    assert after is None  # and resumed once they pressed Done


async def press_done(viewer_url: str) -> None:
    """What the viewer page's Done button sends (from the viewer's own origin)."""
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{viewer_url}/done", headers={"Origin": origin_of(viewer_url)})
    assert response.status_code < 300, response.text

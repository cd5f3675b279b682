"""side_by_side: two questions at once, answered as if asked one after the other."""

from __future__ import annotations

import anyio
import pytest

from chaser_mcp.browser._tasks import side_by_side

pytestmark = pytest.mark.anyio


class PageGone(Exception):
    pass


async def test_both_answers_come_back_in_the_order_asked() -> None:
    async def slow() -> str:
        await anyio.sleep(0.05)
        return "metrics"

    async def fast() -> int:
        return 7

    assert await side_by_side(slow, fast) == ("metrics", 7)


async def test_the_two_are_asked_at_once_not_one_after_the_other() -> None:
    both_waiting = anyio.Event()
    waiting = 0

    async def wait_for_the_other() -> None:
        nonlocal waiting
        waiting += 1
        if waiting == 2:
            both_waiting.set()
        with anyio.fail_after(5):
            await both_waiting.wait()

    await side_by_side(wait_for_the_other, wait_for_the_other)


async def test_a_failure_propagates_as_itself_and_cancels_the_other() -> None:
    cancelled = False

    async def forever() -> None:
        nonlocal cancelled
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    async def fails() -> None:
        await anyio.sleep(0.01)
        raise PageGone("the page closed")

    with pytest.raises(PageGone, match="the page closed"):
        await side_by_side(forever, fails)
    assert cancelled


async def test_when_both_fail_one_of_their_errors_is_raised_not_a_group() -> None:
    async def fails() -> None:
        raise PageGone("the connection closed")

    with pytest.raises(PageGone):
        await side_by_side(fails, fails)

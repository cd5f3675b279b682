"""Client CPU per GET to the loopback fake API: httpx2 as the API client uses it, beside aiohttp.

Which HTTP client the API client should be built on is a question of CPU per request (every tool call
makes one). Each leg GETs the same session from the same fake API process (its own process, so it
never shares the GIL with the client being timed), over one kept-alive connection, and is timed in
interleaved rounds of process CPU time, so a busy machine slows every leg alike:

* ``httpx2_relative``: ``AsyncClient.get("/v1/sessions/<id>")`` with a ``base_url``: the usual way.
* ``httpx2_absolute``: the same with an absolute ``httpx2.URL`` built once (what ``ChaserClient`` sends).
* ``chaser_client``: ``ChaserClient.get_session``: the above plus retries (tenacity), error
  translation and the typed ``Session``.
* ``aiohttp``: ``ClientSession.get`` and ``.json()``, only when aiohttp is installed (it is not a
  dependency: ``pip install aiohttp`` to include it).

    python -m bench.bench_clients            # 5 rounds x 1000 GETs per leg
    python -m bench.bench_clients --quick    # 2 rounds x 50
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx2

from bench.common import bench_arguments, describe_machine, fake_api, new_result, shown, write_result
from chaser_mcp.api import ChaserClient
from tests.fake_chaser import DEFAULT_KEY

Leg = Callable[[], Awaitable[object]]


def optional_aiohttp() -> Any:
    """aiohttp if it is installed, else None (typed loosely: it is not a dependency of the project)."""
    try:
        return importlib.import_module("aiohttp")
    except ImportError:
        return None


async def cpu_per_call(leg: Leg, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await leg()
    return (time.process_time() - started) / calls


async def measure(rounds: int, calls: int) -> dict[str, Any]:
    aiohttp = optional_aiohttp()
    headers = {"Authorization": f"Bearer {DEFAULT_KEY}"}
    async with (
        fake_api() as fake,
        httpx2.AsyncClient(base_url=fake.url, headers=headers) as http,
        ChaserClient(DEFAULT_KEY, base_url=fake.url) as chaser,
    ):
        created = await http.post("/v1/sessions", json={"ttl_seconds": 3600})
        session_id = created.raise_for_status().json()["id"]
        path = f"/v1/sessions/{session_id}"
        absolute = httpx2.URL(fake.url + path)

        async def httpx2_relative() -> object:
            return (await http.get(path)).raise_for_status().json()

        async def httpx2_absolute() -> object:
            return (await http.get(absolute)).raise_for_status().json()

        async def chaser_client() -> object:
            return await chaser.get_session(session_id)

        legs: dict[str, Leg] = {
            "httpx2_relative": httpx2_relative,
            "httpx2_absolute": httpx2_absolute,
            "chaser_client": chaser_client,
        }
        session = aiohttp.ClientSession(base_url=fake.url, headers=headers) if aiohttp else None
        try:
            if session is not None:

                async def aiohttp_get() -> object:
                    async with session.get(path) as response:
                        response.raise_for_status()
                        return await response.json()

                legs["aiohttp"] = aiohttp_get
            for leg in legs.values():  # warm up: connections open, caches filled
                await cpu_per_call(leg, max(calls // 10, 5))
            samples: dict[str, list[float]] = {name: [] for name in legs}
            names = list(legs)
            for i in range(rounds):
                for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate who goes first
                    samples[name].append(await cpu_per_call(legs[name], calls))
        finally:
            if session is not None:
                await session.close()
    floor = statistics.median(samples["httpx2_relative"])
    return {
        name: {
            "cpu_per_call_ms": [round(s * 1000, 4) for s in values],
            "median_ms": round(statistics.median(values) * 1000, 4),
            "vs_httpx2_relative": round(statistics.median(values) / floor, 3),
        }
        for name, values in samples.items()
    }


async def run(quick: bool) -> dict[str, Any]:
    aiohttp = optional_aiohttp()
    machine = describe_machine("httpx2", *(("aiohttp",) if aiohttp else ()))
    result = new_result("bench_clients", quick=quick, machine=machine)
    rounds, calls = (2, 50) if quick else (5, 1000)
    result["rounds"], result["calls_per_round"] = rounds, calls
    result["legs"] = await measure(rounds, calls)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = bench_arguments(__doc__, quick_help="2 rounds of 50 GETs per leg (seconds)").parse_args(argv)
    result = anyio.run(run, args.quick)
    path = write_result(result, args.out)
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_average']}; httpx2 {m['httpx2']}")
    print(f"client CPU per GET (median of {result['rounds']} rounds x {result['calls_per_round']}):")
    for name, leg in result["legs"].items():
        print(
            f"   {name:<16} {leg['median_ms']:.3f} ms  {leg['vs_httpx2_relative']:.2f}x"
            f"  rounds {leg['cpu_per_call_ms']}"
        )
    print(f"\nwritten: {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The page agent's files share one namespace: a name defined twice would silently replace the first."""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources


def test_no_two_agent_files_define_the_same_function() -> None:
    folder = resources.files("chaser_mcp.browser").joinpath("js")
    defined: Counter[str] = Counter()
    for entry in folder.iterdir():
        if entry.name.endswith(".js"):
            defined.update(set(re.findall(r"^A\.([A-Za-z_$][\w$]*) =", entry.read_text(), re.MULTILINE)))
    assert not [name for name, count in defined.items() if count > 1], defined.most_common(3)

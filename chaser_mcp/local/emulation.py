"""The phone every local session pretends to be: a Pixel 7 on Android 14 running Chrome.

The Chrome version in the user agent is the real one of the browser underneath
(from ``Browser.getVersion``), so the device string a session reports, the UA
header, ``navigator.userAgentData`` and client hints all tell the same story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceProfile:
    """Screen, input and identity of an emulated phone."""

    model: str
    android_version: str  # major version, as the UA and client hints show it
    width: int  # CSS pixels
    height: int
    device_scale_factor: float
    max_touch_points: int
    chrome_version: str  # full version, e.g. "156.0.8078.108"

    @property
    def chrome_major(self) -> str:
        return self.chrome_version.split(".", 1)[0]

    @property
    def label(self) -> str:
        """The session's ``device`` field, e.g. ``Android 14 - Chrome 156 (Mobile)``."""
        return f"Android {self.android_version} - Chrome {self.chrome_major} (Mobile)"

    @property
    def user_agent(self) -> str:
        # Chrome's reduced UA keeps only the major version ("156.0.0.0").
        return (
            f"Mozilla/5.0 (Linux; Android {self.android_version}; {self.model}) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{self.chrome_major}.0.0.0 Mobile Safari/537.36"
        )

    def user_agent_metadata(self) -> dict[str, Any]:
        """``Emulation.UserAgentMetadata``: what ``navigator.userAgentData`` and Sec-CH-UA report."""
        major, full = self.chrome_major, self.chrome_version
        brands = [
            ("Chromium", major, full),
            ("Google Chrome", major, full),
            ("Not.A/Brand", "99", "99.0.0.0"),
        ]
        return {
            "brands": [{"brand": b, "version": v} for b, v, _ in brands],
            "fullVersionList": [{"brand": b, "version": f} for b, _, f in brands],
            "fullVersion": full,
            "platform": "Android",
            "platformVersion": f"{self.android_version}.0.0",
            "architecture": "",
            "model": self.model,
            "mobile": True,
            "bitness": "",
            "wow64": False,
        }


def pixel_7(chrome_version: str) -> DeviceProfile:
    """A Pixel 7 (412x915 CSS px at DPR 2.625) on Android 14 with the given Chrome version."""
    return DeviceProfile(
        model="Pixel 7",
        android_version="14",
        width=412,
        height=915,
        device_scale_factor=2.625,
        max_touch_points=5,
        chrome_version=chrome_version,
    )


def chrome_version_from_product(product: str) -> str:
    """``Browser.getVersion``'s ``product`` ("HeadlessChrome/156.0.8078.108") to "156.0.8078.108"."""
    match = re.search(r"/(\d+(?:\.\d+){0,3})", product)
    return match.group(1) if match else "0.0.0.0"


def device_commands(device: DeviceProfile) -> list[tuple[str, dict[str, Any]]]:
    """The CDP commands that make one page target (attached with ``flatten``) look like ``device``.

    Overrides belong to the CDP session that sends them: they last while that session
    stays attached, so the caller keeps it attached for the page's life. The UA
    override takes effect from the next navigation.
    """
    return [
        (
            "Emulation.setDeviceMetricsOverride",
            {
                "width": device.width,
                "height": device.height,
                "deviceScaleFactor": device.device_scale_factor,
                "mobile": True,
                "screenWidth": device.width,
                "screenHeight": device.height,
                "screenOrientation": {"type": "portraitPrimary", "angle": 0},
            },
        ),
        ("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": device.max_touch_points}),
        (
            "Emulation.setUserAgentOverride",
            {
                "userAgent": device.user_agent,
                "acceptLanguage": "en-US,en;q=0.9",
                "platform": "Linux armv81",
                "userAgentMetadata": device.user_agent_metadata(),
            },
        ),
    ]


__all__ = ["DeviceProfile", "chrome_version_from_product", "device_commands", "pixel_7"]

"""A local stand-in for the Chaser cloud: the same REST API on loopback, each session a real
headless Chromium emulating an Android phone. Used with ``--local`` and in CI (no network)."""

from .app import LocalAPIServer, create_local_app, running_local_api, serve_local_api
from .backend import BackendError, LocalBackend, LocalSession
from .chromium import (
    BrowserLaunchError,
    BrowserNotFound,
    BrowserProcess,
    find_chromium,
    launch_browser,
    sweep_stale_profiles,
)
from .emulation import DeviceProfile, pixel_7
from .runtime import LocalBrowser, PageRef

__all__ = [
    "BackendError",
    "BrowserLaunchError",
    "BrowserNotFound",
    "BrowserProcess",
    "DeviceProfile",
    "LocalAPIServer",
    "LocalBackend",
    "LocalBrowser",
    "LocalSession",
    "PageRef",
    "create_local_app",
    "find_chromium",
    "launch_browser",
    "pixel_7",
    "running_local_api",
    "serve_local_api",
    "sweep_stale_profiles",
]

"""Real Chromium for the web client's tests: Debian's `chromium`, driven by Playwright, headless,
with a fake microphone that plays a WAV file of one steady tone.

Playwright's own browser download cannot work here; `.ci/run` installs Debian's
package. Where neither is installed the tests are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium is not installed: `apt-get install -y chromium` (Debian) to run the browser tests"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed: `pip install -e '.[dev]'`")
    return CHROMIUM


def tone_wav(path: Path, hz: float, seconds: float = 2.0, amplitude: float = 0.4, rate: int = 48_000) -> Path:
    """A mono 16-bit WAV of a steady sine; a whole number of cycles, so Chromium's loop does not click."""
    cycles = round(hz * seconds)
    t = np.arange(round(rate * cycles / hz)) / rate
    samples = (amplitude * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def chromium_args(microphone: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",  # CI runs as root
    ]


@contextlib.asynccontextmanager
async def browsers(microphones: dict[str, Path]):
    """One headless Chromium per fake microphone (the file is a browser-wide flag): name -> Browser."""
    from playwright.async_api import async_playwright

    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        launched = {}
        try:
            for name, microphone in microphones.items():
                launched[name] = await playwright.chromium.launch(
                    executable_path=executable, headless=True, args=chromium_args(microphone)
                )
            yield launched
        finally:
            for browser in launched.values():
                await browser.close()


class Client:
    """One person's page of the web client."""

    def __init__(self, page, artifacts: Path, name: str):
        self.page = page
        self.artifacts = artifacts
        self.name = name

    async def shot(self, step: str) -> None:
        await self.page.screenshot(path=str(self.artifacts / f"{step}-{self.name}.png"), full_page=True)

    async def sign_in(self, user_id: str) -> None:
        await self.page.get_by_test_id("user-id").fill(user_id)
        await self.page.get_by_test_id("sign-in").click()

    async def hears(self, hz: float, timeout_ms: int = 15_000) -> dict:
        """Waits until the dominant frequency of what the page plays is within 10 Hz of `hz`."""
        await self.page.wait_for_function(
            """([hz, db]) => { const p = window.podiumTest.live();
                               return p && p.db > db && Math.abs(p.hz - hz) <= 10; }""",
            arg=[hz, -60],
            timeout=timeout_ms,
            polling=20,
        )
        series = await self.page.evaluate(
            """async () => { const out = [];
                for (let i = 0; i < 50; i++) { const p = window.podiumTest.live();
                  out.push([Math.round(p.hz), Math.round(p.db)]); await new Promise(r => setTimeout(r, 20)); }
                return out; }"""
        )
        print(self.name, "hears", series)
        return await self.page.evaluate("window.podiumTest.live()")

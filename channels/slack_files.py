"""Fetching a file someone dropped in Slack, with the bot token, safely.

Slack serves `url_private_download` only with `Authorization: Bearer <bot token>`; without the
`files:read` scope it answers 200 with an HTML login page, so the content type is checked. Redirects
are followed by hand so the token is only ever sent to Slack's own hosts (or the configured API
host, for a proxy or a fake server), never to wherever a redirect points.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.model import InboundFile

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3


class TransientDownloadError(Exception):
    """Slack or the network failed for now: better to let Slack redeliver the event."""


class FileFetcher:
    def __init__(self, session: aiohttp.ClientSession, token: str, api_host: str | None, max_bytes: int) -> None:
        self.session = session
        self.token = token
        self.api_host = api_host
        self.max_bytes = max_bytes

    def trusted(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        slack = host == "slack.com" or host.endswith(".slack.com")
        return slack or (self.api_host is not None and host == self.api_host)

    async def fetch(self, meta: dict[str, Any]) -> InboundFile:
        """An InboundFile with `content` set, or with `content=None` when the file cannot be read."""
        name = str(meta.get("name") or meta.get("title") or meta.get("id") or "file")
        url = meta.get("url_private_download") or meta.get("url_private")
        size = meta.get("size") if isinstance(meta.get("size"), int) else None
        base = InboundFile(name=name, mimetype=meta.get("mimetype"), size=size, url=url, provider_id=meta.get("id"))
        if not url:
            log.warning("slack file has no download url file_id=%s", meta.get("id"))
            return base
        if size is not None and size > self.max_bytes:
            log.warning("slack file too large file_id=%s size=%s limit=%s", meta.get("id"), size, self.max_bytes)
            return base
        content = await self._download(str(url))
        if content is None:
            return base
        return InboundFile(
            name=name, mimetype=base.mimetype, size=len(content), url=url, content=content, provider_id=base.provider_id
        )

    async def _download(self, url: str) -> bytes | None:
        for _ in range(MAX_REDIRECTS + 1):
            if not self.trusted(url):
                log.warning("file not fetched: no bot token for host=%s", urlsplit(url).hostname)
                return None
            headers = {"Authorization": f"Bearer {self.token}"}
            try:
                async with self.session.get(url, headers=headers, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    if resp.status == 429 or resp.status >= 500:
                        raise TransientDownloadError(f"slack file download answered {resp.status}")
                    if resp.status != 200:
                        log.warning("slack file download failed status=%s", resp.status)
                        return None
                    if resp.content_type == "text/html":
                        log.error(
                            "slack answered a login page instead of the file: the bot token needs the files:read scope"
                        )
                        return None
                    data = await resp.content.read(self.max_bytes + 1)
                    if len(data) > self.max_bytes:
                        log.warning("slack file larger than the limit; not kept limit=%s", self.max_bytes)
                        return None
                    return data
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientDownloadError(f"{type(exc).__name__}: {exc}") from exc
        log.warning("slack file download redirected too often")
        return None

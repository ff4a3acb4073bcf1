"""`upload`: post a file from a URL or a local path to the channel (reference §5.1).

Texts are upstream's. Unlike upstream, a local path must stay inside the em's working directory
and may not name a credential file (`discord_token`, `.env`, ...): the model cannot be talked into
posting the bot's secrets.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chapterx.tools.base import CallContext, Plugin, ToolDef, ToolOutcome
from chapterx.tools.http import MAX_DOWNLOAD, download

_SECRET_NAME = re.compile(r"(token|secret|credential|password|\.env$|^\.env|\.pem$|\.key$|id_rsa)", re.I)
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
        "text/plain": ".txt", "application/pdf": ".pdf", "video/mp4": ".mp4", "audio/mpeg": ".mp3",
        "application/json": ".json", "text/csv": ".csv", "application/zip": ".zip"}


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.2f}"


def safe_local_path(base: Path, raw: str) -> Path | None:
    """`raw` resolved under `base`, or None when it leaves it or names a credential file."""
    root = base.resolve()
    target = (root / raw).resolve()
    if target != root and root not in target.parents:
        return None
    if any(_SECRET_NAME.search(part) for part in target.relative_to(root).parts):
        return None
    return target


class UploadPlugin(Plugin):
    name = "upload"
    tools = (
        ToolDef("upload_file_to_discord",
                "Upload a file to the current Discord channel. Supports both URLs and local file paths. Useful for "
                "sharing outputs from tools like video generation (use path for files saved by download_video). "
                "Max size: 25MB.",
                {"type": "object", "properties": {
                    "url": {"type": "string", "description": "URL to download the file from (use this OR path, "
                                                             "not both)"},
                    "path": {"type": "string", "description": "Local file path to upload (use this OR url, not "
                                                              "both). Use this for files saved by other tools like "
                                                              "download_video."},
                    "filename": {"type": "string", "description": "Optional filename for the upload (will be "
                                                                  "inferred from URL/path if not provided)"},
                    "caption": {"type": "string", "description": "Optional caption/message to include with the "
                                                                 "file"}},
                 "required": []}),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        if tool_name != "upload_file_to_discord":
            return await super().call(tool_name, args, ctx)
        url, path = args.get("url"), args.get("path")
        caption = str(args.get("caption") or "")
        if not url and not path:
            return ToolOutcome("Error: Must provide either url or path parameter.")
        if path:
            base = Path(ctx.base_dir or ".")
            target = safe_local_path(base, str(path))
            if target is None:
                return ToolOutcome(f"Error: Path not allowed: {path} (only files inside the bot's working "
                                   "directory, never credential files)")
            if not target.is_file():
                return ToolOutcome(f"Error: File not found: {path}")
            size = target.stat().st_size
            if size > MAX_DOWNLOAD:
                return ToolOutcome(f"Error: File too large ({_mb(size)}MB). Maximum is 25MB.")
            data = target.read_bytes()
            name = str(args.get("filename") or target.name)
        else:
            client = ctx.http_client()
            if client is None:
                return ToolOutcome("Error uploading file: no HTTP client available")
            try:
                got = await download(client, str(url))
            except Exception as exc:  # noqa: BLE001 - network errors are results for the model
                ctx.warn("error: Failed to upload file")
                return ToolOutcome(f"Error uploading file: {exc}")
            if got.status >= 400:
                ctx.warn("error: Failed to upload file")
                return ToolOutcome(f"Error uploading file: Failed to download: HTTP {got.status} {got.reason}")
            if got.too_large:
                return ToolOutcome("Error: File too large (over 25MB). Maximum is 25MB.")
            data = got.data
            name = str(args.get("filename") or posixpath.basename(urlparse(str(url)).path) or "file")
            if "." not in name:
                ctype = got.content_type.split(";")[0].strip()
                name += _EXT.get(ctype) or mimetypes.guess_extension(ctype) or ""
        send_file = ctx.extra.get("send_file")
        if send_file is None:
            return ToolOutcome("Error uploading file: this channel does not accept files")
        await send_file(caption, name, data)
        return ToolOutcome(f"Successfully uploaded {name} ({_mb(len(data))}MB) to Discord.")


PLUGIN = UploadPlugin()

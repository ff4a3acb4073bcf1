"""`share-image`: list the images in the model's context (Discord attachments, MCP tool images of
this activation) and post one of them to the channel (reference §5.1; texts are upstream's)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from chapterx.tools.base import CallContext, Plugin, ToolDef, ToolOutcome


def _ext(mime: str) -> str:
    sub = mime.split("/")[-1].lower() if "/" in mime else "png"
    return "jpg" if sub == "jpeg" else sub


def visible_images(ctx: CallContext) -> list[dict[str, Any]]:
    """Newest first: MCP images of this activation, then Discord images of the context."""
    out: list[dict[str, Any]] = []
    for tool, img in reversed(ctx.extra.get("mcp_images") or []):
        out.append({"source": "mcp", "tool": tool, "mime": img.get("mimeType", "image/png"),
                    "data": base64.b64decode(img.get("data", ""))})
    for item in ctx.extra.get("context_images") or []:
        out.append({"source": "discord", **item})
    return out


class ShareImagePlugin(Plugin):
    name = "share-image"
    tools = (
        ToolDef("list_visible_images",
                "List all images currently visible in your context. Shows index, source, and description for each "
                "image.", {"type": "object", "properties": {}, "required": []}),
        ToolDef("share_image",
                "Share an image from your context to the current Discord channel. Use list_visible_images first to "
                "see what images are available. Index 1 = most recent image.",
                {"type": "object", "properties": {
                    "index": {"type": "number", "description": "Image index (1 = most recent, 2 = second most "
                                                               "recent, etc.)"},
                    "caption": {"type": "string", "description": "Optional caption to include with the image"}},
                 "required": ["index"]}),
    )

    async def call(self, tool_name: str, args: Mapping[str, Any], ctx: CallContext) -> ToolOutcome:
        images = visible_images(ctx)
        if tool_name == "list_visible_images":
            if not images:
                return ToolOutcome("No images visible in context. There are no images from Discord messages or "
                                   "MCP tool results.")
            lines = [f"Visible images ({len(images)} total, newest first):"]
            for i, img in enumerate(images, 1):
                kb = int(len(img["data"]) / 1024 + 0.5)
                if img["source"] == "mcp":
                    lines.append(f"{i}. [{img['mime']}] MCP tool ({img['tool']}) (~{kb}KB)")
                else:
                    lines.append(f"{i}. [{img['mime']}] Discord (channel) - cached from {img['filename']} (~{kb}KB)")
            lines += ["", "Use share_image with an index to share any of these to Discord."]
            return ToolOutcome("\n".join(lines))
        if tool_name == "share_image":
            if not images:
                return ToolOutcome("No images available in context. There are no images from Discord messages or "
                                   "MCP tools visible.")
            raw = args.get("index")
            index = int(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0
            if not 1 <= index <= len(images):
                return ToolOutcome(f"Invalid index {raw}. Available images: 1-{len(images)}. "
                                   "Use list_visible_images to see details.")
            img = images[index - 1]
            if img["source"] == "mcp":
                name = f"{img['tool']}_image_{index}.{_ext(img['mime'])}"
                default = f"Image {index} (from {img['tool']} tool)"
            else:
                name = f"shared_image_{index}.{_ext(img['mime'])}"
                default = f"Image {index} (from channel)"
            send_file = ctx.extra.get("send_file")
            if send_file is None:
                return ToolOutcome("Error: this channel does not accept files")
            await send_file(str(args.get("caption") or default), name, img["data"])
            return ToolOutcome(f"Successfully shared image {index} to Discord.")
        return await super().call(tool_name, args, ctx)


PLUGIN = ShareImagePlugin()

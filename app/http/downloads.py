"""The Content-Disposition of a download, for any file name a tenant chose."""

from __future__ import annotations

from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """RFC 6266: the name as UTF-8 in `filename*`, and an ASCII stand-in in `filename` for clients that read only
    that (a header is Latin-1, and a quote or backslash would end or escape the quoted string)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"

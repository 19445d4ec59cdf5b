from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """The URL with its password masked, for reprs and logs."""
    u = urlsplit(url)
    if not u.password:
        return url
    netloc = f"{u.username or ''}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
    return u._replace(netloc=netloc).geturl()

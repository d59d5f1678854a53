"""The emulator's HTML pages: login, approval ("Log in With Twinne"), errors.

Every value a page shows passes through :func:`html.escape` (app names,
usernames and URLs are data a test may fill with markup on purpose).
"""

from __future__ import annotations

from html import escape
from typing import Final

__all__ = [
    "approval_page",
    "callback_page",
    "cancelled_page",
    "error_page",
    "home_page",
    "login_page",
    "not_found_page",
]

_LAYOUT: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | Twinne emulator</title>
<style>
body {{ font-family: sans-serif; max-width: 28rem; margin: 4rem auto; padding: 0 1rem; }}
button, input {{ font-size: 1rem; padding: .4rem .8rem; }}
.error {{ color: #b00020; }}
</style>
</head>
<body>
<h1>{title}</h1>
{content}
</body>
</html>
"""


def _page(title: str, content: str) -> str:
    return _LAYOUT.format(title=escape(title), content=content)


def login_page(*, next_url: str, error: str | None = None) -> str:
    """The sign-in form: a username, no password (this is an emulator)."""
    problem = f'<p class="error">{escape(error)}</p>\n' if error else ""
    return _page(
        "Sign in to Twinne",
        f"""{problem}<form method="post" action="/login">
<input type="hidden" name="next" value="{escape(next_url)}">
<label>Username <input name="username" autocomplete="username" required autofocus></label>
<p>No password is needed: the emulator trusts any registered username.</p>
<button type="submit">Sign in</button>
</form>""",
    )


def approval_page(*, app_name: str, app_id: str, username: str, csrf: str) -> str:
    """The consent page: "Log in With Twinne", the app's name, Approve / Cancel."""
    return _page(
        "Log in With Twinne",
        f"""<p>Signed in as <strong>{escape(username)}</strong>.</p>
<p><strong class="app-name">{escape(app_name)}</strong> would like to access your
public profile: name, username, email, picture and birthdate.</p>
<form method="post" action="/api/oauth?app_id={escape(app_id)}">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>""",
    )


def error_page(message: str) -> str:
    """Sngine's error page: a title and a message, never a redirect."""
    return _page("Error", f'<p class="error">{escape(message)}</p>')


def cancelled_page(app_name: str) -> str:
    """Shown after Cancel on the approval page."""
    return _page(
        "Login cancelled", f"<p>You did not log in to {escape(app_name)} with Twinne.</p>"
    )


def callback_page(*, received: bool) -> str:
    """The default redirect target (``/callback``): says whether a key arrived.

    The key itself is not shown: it is a secret, and the URL already holds it.
    """
    text = (
        "An auth_key arrived in this page's URL. Exchange it with /api/authorize."
        if received
        else "No auth_key in this URL."
    )
    return _page("Callback", f"<p>{escape(text)}</p>")


def home_page(*, username: str | None, app_links: list[tuple[str, str]]) -> str:
    """The emulator's front page: who is signed in and each app's login link."""
    who = (
        f"<p>Signed in as <strong>{escape(username)}</strong>.</p>"
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
        if username
        else '<p>Not signed in. <a href="/login">Sign in</a></p>'
    )
    links = "".join(
        f'<li><a href="{escape(url)}">Log in With Twinne: {escape(name)}</a></li>'
        for name, url in app_links
    )
    return _page("Twinne emulator", f"{who}\n<ul>{links}</ul>")


def not_found_page() -> str:
    """The site's 404 page (an unknown path, ``/api/`` or a path below an endpoint)."""
    return _page("Page not found", "<p>The page you are looking for does not exist.</p>")

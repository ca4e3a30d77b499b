"""Messages of the login page when the store refuses to check a password (throttled or busy)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "login.throttled": (
        "登录尝试过多，请在 {seconds} 秒后重试",
        "Too many attempts; try again in {seconds} s",
    ),
    "login.busy": ("服务器繁忙，请在 {seconds} 秒后重试", "The server is busy; try again in {seconds} s"),
}

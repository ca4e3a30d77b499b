"""Messages of re-coding (改判类型): the queue's number keys and the case page's form."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "action.recode": ("改判类型", "Re-code"),
    "action.merge": ("并入案件", "Merged in"),
    "recode.legend": ("改判类型（数字键）：", "Re-code (number keys):"),
    "recode.new_code": ("新的案件类型", "New violation type"),
    "recode.recoded": ("案件 #{id} 已改判为 {code} {name}", "Case #{id} re-coded to {code} {name}"),
    "recode.merged": (
        "案件 #{id} 已改判为 {code}，并入该地点未结的案件 #{target}",
        "Case #{id} re-coded to {code} and merged into the open case #{target} at its place",
    ),
    "recode.merged_into": ("已并入案件 #{target}", "Merged into case #{target}"),
}

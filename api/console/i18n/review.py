"""Messages of the review queue."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "review.title": ("审核队列", "Review queue"),
    "review.count": ("待审核 {count} 件", "{count} pending"),
    "review.empty": ("没有待审核的案件。", "No cases are waiting for review."),
    "review.filter": ("筛选", "Filter"),
    "review.type_to_search": ("输入以搜索", "Type to search"),
    "review.clear": ("清除筛选", "Clear filters"),
    "review.any": ("全部", "Any"),
    "review.from": ("开始日期", "From"),
    "review.to": ("结束日期", "To"),
    "review.select_all": ("全选本页", "Select all on this page"),
    "review.confirm_selected": ("批量立案", "Confirm selected"),
    "review.reject_selected": ("批量作废", "Reject selected"),
    "review.confirm": ("立案", "Confirm"),
    "review.reject": ("作废", "Reject"),
    "review.reject_title": ("作废原因", "Why reject?"),
    "review.read_only": (
        "您的角色只能查看审核队列，立案和作废由值班长操作。",
        "Your role can look at the queue; shift leaders confirm and reject.",
    ),
    "review.shortcuts": (
        "快捷键：j/k 上下移动，Enter 或 c 立案，x 作废（再按 1/2/3 选原因），空格 选择",
        "Shortcuts: j/k move, Enter or c confirm, x reject (then 1/2/3 for the reason), space select",
    ),
    "review.filed": ("案件 #{id} 已立案：{status} {unit}", "Case #{id} filed: {status} {unit}"),
    "review.voided": ("案件 #{id} 已作废", "Case #{id} rejected"),
    "review.failed": ("案件 #{id} 未处理：{error}", "Case #{id} not changed: {error}"),
    "review.nothing_selected": ("请先选择案件（空格键）", "Select cases first (space)"),
    "review.zone": ("区域", "Zone"),
    "review.select_case": ("选择案件 #{id}", "Select case #{id}"),
}

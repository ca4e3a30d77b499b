"""Messages of the unit board."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "board.title": ("处置看板", "Unit board"),
    "board.my_queue": ("本单位待处置案件：{unit}", "Cases for {unit}"),
    "board.empty": ("没有案件。", "No cases."),
    "board.awaiting_check": ("已反馈、待核查", "Resolved, awaiting verification"),
    "board.units": ("各单位案件", "Cases by unit"),
    "board.overdue": ("超期案件", "Overdue cases"),
    "board.to_dispatch": ("待派遣（已立案、回退、挂账）", "To dispatch (filed, returned, deferred)"),
    "board.to_verify": ("待核查、待结案", "To verify or close"),
    "board.col_open": ("处置中", "Open"),
    "board.col_overdue": ("超期", "Overdue"),
    "board.col_resolved": ("待核查", "To verify"),
    "board.start": ("开始处置", "Mark in progress"),
    "board.resolve": ("处理完毕并反馈", "Mark resolved"),
    "board.resolve_note": ("处置说明", "What was done"),
    "board.no_unit": ("未分配", "No unit"),
    "board.next_page": ("后 {count} 件 →", "Next {count} →"),
    "board.first_page": ("← 回到最前", "← Back to the first"),
}

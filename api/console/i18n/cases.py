"""Messages of the case page."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "case.evidence_before": ("现场图片（处置前）", "Evidence (before)"),
    "case.evidence_after": ("处置后图片", "After handling"),
    "case.no_after": ("暂无处置后图片。", "No after-handling image yet."),
    "case.sightings": ("发现记录", "Sightings"),
    "case.timeline": ("办理过程", "Audit timeline"),
    "case.actions": ("可执行操作", "Actions"),
    "case.no_actions": (
        "您当前不能对此案件执行操作。",
        "There is nothing your role can do to this case now.",
    ),
    "case.recurrence_of": ("复发自 {link}", "Recurrence of {link}"),
    "case.recurrences": ("此后复发", "Later recurrences"),
    "case.escalated_to": ("已升级至 {unit}", "Escalated to {unit}"),
    "case.extension_pending": (
        "延时申请待审批：{hours} 工作小时",
        "Extension requested: {hours} working hours",
    ),
    "case.reason": ("原因", "Reason"),
    "case.unit_routing": ("按路由规则", "By routing rules"),
    "case.hours": ("工作小时", "Working hours"),
    "case.photo": ("现场照片", "Photo"),
    "case.photo_hint": ("JPEG 或 PNG", "JPEG or PNG"),
    "case.note_required": ("备注（必填）", "Note (required)"),
    "case.done": ("已执行：{action}", "Done: {action}"),
    "case.received": ("接收时间", "Received"),
    "case.zone": ("区域", "Zone"),
    "case.boxes": ("目标数", "Objects"),
    "case.actor": ("操作人", "By"),
    "case.source": ("来源", "Source"),
    "case.rework_count": ("返工 {count} 次", "Reworked {count} times"),
    "evidence.first_seen": ("首次发现", "First seen"),
    "evidence.confirmation": ("确认画面", "Confirmation"),
    "evidence.crop": ("局部特写", "Close-up"),
    "evidence.after": ("复核画面", "After (camera)"),
    "evidence.handling": ("处置照片", "Handling photo"),
}

"""Messages of a camera's false-alarm memory (suppressions)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "suppressions.title": ("误报记忆：{camera}", "Remembered false alarms: {camera}"),
    "suppressions.explain": (
        "以“误报”作废的案件会在此记住：同一位置、同一类型的目标在到期前不再上报。删除后重新判定。",
        "A case voided as a false positive is remembered here: the same kind of object at the same spot is "
        "not reported again until it expires. Remove one to have it judged again.",
    ),
    "suppressions.link": ("误报记忆", "False alarms"),
    "suppressions.crop": ("引起误报的画面", "Crop that caused it"),
    "suppressions.what": ("目标", "Object"),
    "suppressions.zone": ("区域", "Zone"),
    "suppressions.case": ("案件", "Case"),
    "suppressions.by": ("作废人", "Voided by"),
    "suppressions.at": ("记录时间", "Remembered at"),
    "suppressions.expires": ("到期", "Expires"),
    "suppressions.expired": ("已到期", "Expired"),
    "suppressions.remove": ("删除", "Remove"),
    "suppressions.removed": ("已删除误报记忆 #{id}", "False alarm #{id} removed"),
    "suppressions.empty": ("该摄像头没有误报记忆。", "No remembered false alarms on this camera."),
    "suppressions.back": ("返回摄像头列表", "Back to the cameras"),
    "action.suppression_removed": ("删除误报记忆", "False alarm forgotten"),
}

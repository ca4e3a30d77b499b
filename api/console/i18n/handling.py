"""Messages of the handling rules (per violation type), the action buttons and the board's sections."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "handling.rules": ("处置要求", "Handling rules"),
    "handling.rule_start": ("须先开始处置", "Start before resolving"),
    "handling.rule_photo": ("反馈须附处置照片", "Photo required to resolve"),
    "handling.photo_needed": (
        "必填：处置后现场照片（JPEG 或 PNG）",
        "Required: a photo after handling (JPEG or PNG)",
    ),
    "handling.photo_required_to_resolve": (
        "该类问题须上传处置后的现场照片才能反馈，请附上照片后再提交。",
        "This violation type needs a photo of the handled place to resolve: attach one and submit again.",
    ),
    "handling.start_required_before_resolve": (
        "该类问题须先“开始处置”，再处理反馈。",
        "This violation type must be started (Mark in progress) before it can be resolved.",
    ),
    "review.page_done": (
        "本页案件已全部处理，还有 {count} 件待审核。",
        "This page is done; {count} more wait for review.",
    ),
    "review.reload": ("加载下一批", "Load the next ones"),
    "review.bulk_done": ("已处理 {ok} 件，未处理 {failed} 件。", "{ok} done, {failed} not changed."),
    "board.section_overdue": ("已超期", "Overdue"),
    "board.section_due_soon": ("即将到期（2 小时内）", "Due soon (within 2 hours)"),
    "board.section_in_progress": ("处置中", "In progress"),
}

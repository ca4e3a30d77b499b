"""The store's catalogue of messages people read: system notes in a case's timeline and error details.

A note or an error is a code with parameters (:class:`common.messages.Message`); the console renders it
in the reader's language, the JSON API and the logs get the English text (``str(message)``). Audit events
keep ``note`` (English, for API readers and old rows) and the message itself in ``data["note_message"]``,
so the timeline renders it in Chinese years later. Parameters carry both the codes an API client matches on
(``place``, ``unit``, ``violation``) and the names people read (``place_name``, ``unit_name``,
``violation_name``). Add a message here; :func:`msg` refuses an unknown code.
"""

from __future__ import annotations

from typing import Final

from common.messages import Message, Param, from_data
from contract.schedule import MESSAGES as SCHEDULE_MESSAGES

NOTE_KEY: Final = "note_message"  # where an audit event's data keeps its catalogued note

_ROUTE_HEAD = "routing rule #{rule} ({tier}, priority {priority}): place {place} + violation {violation}"
_ROUTE_HEAD_ZH = "路由规则 #{rule}（{tier_zh}，优先级 {priority}）：{place_name}的{violation_name}"
# Parameters a renderer fills in the reader's language (``<name>_zh`` from ``<name>``): the console's
# labels of statuses, actions and roles, and this catalogue's ``field.*`` and ``route.tier.*``.
LOCALISED_PARAMS: Final = ("status", "action", "role", "field", "tier")

MESSAGES: dict[str, tuple[str, str]] = {
    # --- routing: why a unit got the case (audit notes and the 422 of a dispatch nobody can take) ---
    "route.rule": (
        _ROUTE_HEAD_ZH + "交由{unit_name}处置{skipped_zh}",
        _ROUTE_HEAD + " -> {unit} ({unit_name}){skipped}",
    ),
    "route.owner": (
        "属地兜底：{place_name}的{violation_name}没有路由规则{skipped_zh}，由属地单位{unit_name}处置",
        "属地兜底: no routing rule for place {place} + violation {violation}{skipped}; "
        "the place's owner {unit} ({unit_name}) takes it",
    ),
    "route.none_no_owner": (
        "{place_name}的{violation_name}没有路由规则{skipped_zh}，该地点也没有属地单位：请手动选择责任单位派遣",
        "no routing rule for place {place} + violation {violation}{skipped}, and the place has no owner "
        "unit: dispatch it by hand with a unit_id",
    ),
    "route.none_owner_disabled": (
        "{place_name}的{violation_name}没有路由规则{skipped_zh}，其属地单位{unit_name}已停用：请手动选择责任单位派遣",
        "no routing rule for place {place} + violation {violation}{skipped}, and the place is owned by "
        "disabled unit {unit}: dispatch it by hand with a unit_id",
    ),
    "route.skipped": ("（已跳过 {count} 条指向停用单位的规则）", " (skipped {count}: {detail})"),
    "route.tier.place + violation": ("地点+类型", "place + violation"),
    "route.tier.place": ("地点", "place"),
    "route.tier.violation": ("类型", "violation"),
    "route.tier.catch-all": ("通用", "catch-all"),
    "route.chosen": ("由{actor_name}指定", "chosen by {actor}"),
    "route.resumed": ("恢复派遣给原责任单位{unit_name}", "resumed with its unit {unit}"),
    "route.rework": ("第 {count} 次返工，退回{unit_name}", "rework #{count} back to {unit}"),
    "ingest.place_created": (
        "地点 {place} 尚未登记：已自动创建，但没有属地单位；请登记其属地单位和路由规则，以便派遣",
        "place '{place}' was not registered: created it without an owner unit; register it (owner unit, "
        "routing rules) so that its cases can be routed",
    ),
    # --- jobs ---
    "overdue.escalated": (
        "{unit_name}超过处置时限，已升级至{parent_name}",
        "deadline {deadline} passed while with {unit}; escalated to {parent}",
    ),
    "overdue.no_parent": (
        "{unit_name}超过处置时限，该单位没有可升级的上级单位",
        "deadline {deadline} passed while with {unit}; {unit} has no parent unit to escalate to",
    ),
    "retention.deleted": (
        "已按保存期限删除 {count} 张图片（结案后 {days} 天）",
        "{count} evidence image(s) deleted under retention, {days} days after the case ended",
    ),
    # --- errors a console user meets (the API's JSON keeps its detailed English sentence) ---
    "error.case_not_found": ("案件 #{case} 不存在，或您无权查看", "case {case} not found"),
    "error.wrong_status": (
        "案件当前为“{status_zh}”，不能{action_zh}",
        "cannot {action} a case that is '{status}'",
    ),
    "error.extension_state": (
        "不能{action_zh}：{state_zh}",
        "cannot {action} the case: {state}",
    ),
    "error.extension_none": ("没有待审批的延时申请", "no extension request is pending"),
    "error.extension_pending": ("已有待审批的延时申请", "an extension request is already pending"),
    "error.role": ("您的角色（{role_zh}）不能{action_zh}", "role '{role}' may not {action} a case"),
    "error.not_own": ("只能{action_zh}本单位的案件", "a {role} may {action} only their own unit's cases"),
    "error.need_reason": ("{action_zh}需要选择原因", "{action} needs a reason"),
    "error.need_note": ("{action_zh}需要填写备注说明原因", "{action} needs a note saying why"),
    "error.need_hours": (
        "{action_zh}需要填写工作小时数（大于 0）",
        "{action} needs hours (working hours > 0)",
    ),
    "error.bad_hours": (
        "工作小时数须大于 0 且不超过 10000，收到 {hours}",
        "hours must be working hours > 0 (and at most 10000); got {hours}",
    ),
    "error.no_field": ("{action_zh}不需要{field_zh}", "{action} takes no {field}"),
    "error.need_code": ("{action_zh}需要选择新的问题类型", "{action} needs violation_code"),
    "error.unclassified": (
        "案件 #{case} 的类型尚待分类：请先改判类型再{action_zh}",
        "cannot {action} case {case}: its violation {violation} is still to classify; re-code it first",
    ),
    "error.back_to_returner": (
        "按路由规则会派回退回此案的{unit_name}：请选择其他责任单位",
        "routing sends case {case} back to {unit}, the unit that returned it: give a unit_id",
    ),
    "error.same_unit": (
        "案件已由{unit_name}处置：请选择其他单位",
        "case {case} is already assigned to {unit}",
    ),
    "error.unit_missing": ("所选单位不存在或已停用", "unit {unit_id} does not exist or is disabled"),
    "error.no_rework_unit": ("案件没有可返工的责任单位", "case {case} has no unit to send the rework to"),
    "error.code_inactive": ("问题类型 {code} 不存在或已停用", "violation_code {code} is unknown or inactive"),
    "error.same_code": ("案件已是{violation_name}：请选择其他类型", "case {case} is already {code}"),
    "error.code_for_review": (
        "{violation_name}仅用于待审核案件：已立案的案件需要可派遣的类型",
        "{code} is for cases still under review; a filed case needs a code a unit can be sent for",
    ),
    "error.photo_missing": ("请上传 JPEG 或 PNG 格式的现场照片", "expected a JPEG or PNG image"),
    "error.photo_corrupt": (
        "照片已损坏或不完整：请重新拍摄或选择 JPEG/PNG 文件",
        "the image is corrupt or truncated",
    ),
    "error.photo_too_large": ("照片过大（上限 {limit_mb} MB）", "image is larger than {limit_mb} MB"),
    "error.photo_too_many_pixels": (
        "照片像素过多（{width}×{height}，上限 {limit} 像素）",
        "image is {width}x{height} pixels, more than {limit}",
    ),
    "error.number": ("单位或小时数不是数字", "unit_id or hours is not a number"),
    "error.bad_date": (
        "{field_zh}应为日期（年-月-日），收到 {value}",
        "{field}: expected a date YYYY-MM-DD, got {value}",
    ),
    "error.bad_cursor": ("翻页链接已失效：请回到第一页", "bad page cursor: open the first page"),
    "error.page_role": ("您的角色不能打开此页面", "your role may not open this page"),
    # Field names in messages; the console gives *_zh parameters from these and the status/action labels.
    "field.hours": ("工作小时", "hours"),
    "field.unit_id": ("责任单位", "unit_id"),
    "field.violation_code": ("问题类型", "violation_code"),
    "field.reason": ("原因", "reason"),
    "field.from": ("开始日期", "from"),
    "field.to": ("结束日期", "to"),
    **SCHEDULE_MESSAGES,
}


def msg(code: str, /, **params: Param) -> Message:
    """The catalogued message ``code``; an unknown code is a bug (KeyError), not a blank line."""
    if code not in MESSAGES:
        raise KeyError(f"message {code!r} is not in api.messages.MESSAGES")
    return Message(code, params, MESSAGES)


def stored(data: object) -> Message | None:
    """The message kept in an audit event's ``data`` (:data:`NOTE_KEY`), if any and still catalogued."""
    if not isinstance(data, dict):
        return None
    return from_data(data.get(NOTE_KEY), MESSAGES)

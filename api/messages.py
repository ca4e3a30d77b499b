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
    # --- reference data refused (api.reference, the admin pages): the admin forms name the field ---
    "ref.unknown_unit": ("单位编码“{code}”不存在", "{field}: unknown unit code {code!r}"),
    "ref.unknown_place": ("地点编码“{key}”不存在", "{field}: unknown place key {key!r}"),
    "ref.unknown_violation": (
        "问题类型代码“{code}”不存在（现有：{known_zh}）",
        "{field}: unknown violation event code {code!r} (known: {known})",
    ),
    "ref.unknown_device": (
        "边缘设备“{name}”不存在：请先在“边缘设备”页登记",
        "{field}: unknown device {name!r} (register it with `streetwatch api create-device`)",
    ),
    "ref.unknown_pipeline_types": (
        "未知的检测类型 {types}（现有：{known_zh}）",
        "{field}: unknown violation type(s) {types} (known pipeline types: {known})",
    ),
    "ref.unknown_report_as": (
        "未知的检测类型 {type}（现有：{known_zh}）",
        "{field}: unknown violation type {type} (known pipeline types: {known})",
    ),
    "ref.duplicate_unit": ("单位编码“{code}”已存在", "a unit with code {code!r} already exists"),
    "ref.duplicate_place": ("地点编码“{key}”已存在", "a place with key {key!r} already exists"),
    "ref.duplicate_violation": (
        "问题类型代码“{code}”已存在",
        "a violation type with event code {code!r} already exists",
    ),
    "ref.duplicate_camera": ("摄像头编码“{code}”已存在", "a camera with code {code!r} already exists"),
    "ref.duplicate_device": ("名为“{name}”的边缘设备已存在", "a device named {name!r} already exists"),
    "ref.duplicate_user": ("用户名“{username}”已存在", "a user named {username!r} already exists"),
    "ref.twice": ("{what_zh}“{value}”重复出现", "{what} {value!r} appears twice"),
    "ref.not_null": (
        "{names}不能为空：如需保留原值，请不要提交该项",
        "{names} cannot be null: leave the field out to keep its value",
    ),
    "ref.null": ("{name}不能为空", "{name} cannot be null"),
    "ref.unit_loop": (
        "上级单位“{parent}”是“{unit}”本身或其下级单位：层级会形成循环",
        "parent: unit {parent!r} is {unit!r} itself or one of its descendants: the hierarchy would loop",
    ),
    "ref.lat_lon": ("纬度和经度须同时填写，或都不填", "give both lat and lon, or neither"),
    "ref.email": (
        "“{value}”不是电子邮件地址（只填一个地址）",
        "{value!r} is not an e-mail address (one address such as office@city.example)",
    ),
    "ref.timezone": (
        "未知时区“{name}”：请填写时区数据库中的名称，如 Asia/Shanghai",
        "unknown time zone {name!r}: use an IANA name such as Asia/Shanghai",
    ),
    "ref.period_reversed": (
        "时段 {start}-{end} 的结束时间早于开始时间",
        "period {start}-{end} ends before it starts",
    ),
    "ref.period_order": (
        "时段 {start}-{end} 与前一时段重叠或在其之前：请按时间先后填写",
        "period {start}-{end} overlaps or precedes the one before: list them in order",
    ),
    "ref.period_syntax": (
        "时段“{text}”：请写成“开始-结束”，如 08:30-12:00",
        "period {text!r}: write start-end, e.g. 08:30-12:00",
    ),
    "ref.day": ("日期请写成 年-月-日，如 2026-10-01", "day: give a date as YYYY-MM-DD"),
    "ref.polygon_area": (
        "区域多边形没有面积：各点共线或重复",
        "the zone polygon has no area: its points are collinear or repeated",
    ),
    "ref.handler_unit": ("处置人员须选择所属单位", "a unit handler needs a unit"),
    "ref.own_admin": (
        "不能取消自己的管理员权限，也不能停用自己",
        "you cannot take away your own admin rights or deactivate yourself",
    ),
    # Field names in messages; the console gives *_zh parameters from these and the status/action labels.
    "field.hours": ("工作小时", "hours"),
    "field.unit_id": ("责任单位", "unit_id"),
    "field.violation_code": ("问题类型", "violation_code"),
    "field.reason": ("原因", "reason"),
    "field.from": ("开始日期", "from"),
    "field.to": ("结束日期", "to"),
    # --- boxes drawn on evidence images (api.review_labels) ---
    "error.label_box": (
        "标注框 {box} 无效：四个数都须在 0 到 1 之间，且左边小于右边、上边小于下边",
        "box {box}: every value must lie in 0..1 (a share of the image), x1 < x2 and y1 < y2",
    ),
    "error.label_image": (
        "证据 {evidence} 不是案件 #{case} 的图片",
        "evidence {evidence} is not an image of case {case}",
    ),
    "error.label_code": ("{code} 不是启用的问题类型", "event_code '{code}' is not an active violation code"),
    "error.label_author": (
        "标注 #{label} 由 {author} 绘制：只有作者或管理员可以删除",
        "label {label} was drawn by {author}: only its author or an admin deletes it",
    ),
    "error.label_role": (
        "只有值班长、派遣员和管理员可以标注",
        "only shift leaders, dispatchers and admins draw labels",
    ),
    **SCHEDULE_MESSAGES,
}


# Things a ``ref.twice`` message names (``what``), in Chinese.
WHAT_ZH: Final = {"weekday": "工作日", "zone code": "区域编码"}


class Refusal(ValueError):
    """A refusal raised where a ValueError is expected (a pydantic validator, a model's check): its text is
    the English message (what the API answers), ``msg`` the catalogued message the console renders."""

    def __init__(self, message: Message) -> None:
        super().__init__(str(message))
        self.msg = message


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

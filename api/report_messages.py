"""The words of the pushed reports (api.pushed_reports): Chinese e-mails (plain text + simple HTML) and the
JSON bodies sent to webhooks and MQTT. Times are in the store's time zone (the working calendar's)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from api.stats import Figures, Period, Ranking

BEIJING_TIME_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"})  # all UTC+8
STATUS_NAMES = {"dispatched": "已派遣", "in_progress": "处置中"}
CASE_HEADERS = ("案件号", "类型", "地点", "状态", "处置时限", "是否超期")


@dataclass(frozen=True)
class CaseLine:
    """One case as a report lists it."""

    id: int
    violation: str  # the type's name (or its code when the type is unknown)
    place: str  # the place's name and key
    status: str
    deadline_at: dt.datetime | None
    overdue: bool

    def cells(self, tz: ZoneInfo) -> tuple[str, ...]:
        return (
            case_no(self.id),
            self.violation,
            self.place,
            STATUS_NAMES.get(self.status, self.status),
            local_time(self.deadline_at, tz),
            "已超期" if self.overdue else "未超期",
        )

    def public(self, tz: ZoneInfo) -> dict[str, Any]:
        return {
            "id": self.id,
            "violation": self.violation,
            "place": self.place,
            "status": self.status,
            "deadline_at": self.deadline_at.isoformat() if self.deadline_at else None,
            "deadline_local": local_time(self.deadline_at, tz),
            "overdue": self.overdue,
        }


def case_no(case_id: int) -> str:
    return f"案件 #{case_id}"


def local_time(moment: dt.datetime | None, tz: ZoneInfo) -> str:
    return "无" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} 小时"


def period_words(period: Period) -> str:
    if period.start == period.end:
        return period.start.isoformat()
    return f"{period.start.isoformat()} 至 {period.end.isoformat()}"


# --- mail assembly -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    title: str
    lines: Sequence[str] = ()
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()


def mail(subject: str, intro: str, sections: Sequence[Section], tz: ZoneInfo) -> dict[str, str]:
    """``{"subject", "text", "html"}`` of one message."""
    zone = "北京时间" if tz.key in BEIJING_TIME_ZONES else f"{tz.key} 当地时间"
    footer = f"（时间均为{zone}。本邮件由 streetwatch 自动发送，请勿直接回复。）"
    text_parts, html_parts = [intro, ""], [f"<p>{html.escape(intro)}</p>"]
    for section in sections:
        text_parts.append(f"【{section.title}】")
        text_parts.extend(section.lines)
        html_parts.append(f"<h3>{html.escape(section.title)}</h3>")
        html_parts.extend(f"<p>{html.escape(line)}</p>" for line in section.lines)
        if section.rows:
            text_parts.extend(" | ".join(cells) for cells in [section.headers, *section.rows])
            html_parts.append(_table(section.headers, section.rows))
        text_parts.append("")
    text_parts.append(footer)
    html_parts.append(f'<p style="color:#666">{html.escape(footer)}</p>')
    body = "\n".join(html_parts)
    page = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head><body>{body}</body></html>"
    )
    return {"subject": subject, "text": "\n".join(text_parts) + "\n", "html": page}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    style = ' style="border:1px solid #999;padding:2px 6px"'
    head = "".join(f"<th{style}>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{style}>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in rows
    )
    return f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>'


# --- the messages --------------------------------------------------------------------------------------


def digest_mail(unit_name: str, day: dt.date, cases: Sequence[CaseLine], tz: ZoneInfo) -> dict[str, str]:
    """日督促: the unit's open cases, overdue first."""
    overdue = [c for c in cases if c.overdue]
    subject = f"【日督促】{unit_name} {day.isoformat()}：在办 {len(cases)} 件，其中超期 {len(overdue)} 件"
    intro = (
        f"{unit_name}：截至 {day.isoformat()}，贵单位在办案件 {len(cases)} 件，"
        f"其中超期 {len(overdue)} 件，请抓紧处置。"
    )
    ordered = sorted(
        cases, key=lambda c: (not c.overdue, c.deadline_at or dt.datetime.max.replace(tzinfo=dt.UTC))
    )
    section = Section("在办案件", headers=CASE_HEADERS, rows=[c.cells(tz) for c in ordered])
    return mail(subject, intro, [section], tz)


def warning_mail(
    unit_name: str, case: CaseLine, share: float, remaining_hours: float, tz: ZoneInfo
) -> dict[str, str]:
    """时限预警: a case has used ``share`` of its working-hours deadline."""
    used = f"{share * 100:.0f}%"
    subject = f"【时限预警】{case_no(case.id)} 已用处置时限 {used}，{local_time(case.deadline_at, tz)} 到期"
    intro = (
        f"{unit_name}：{case_no(case.id)}（{case.violation}，{case.place}）已用去处置时限的 {used}，"
        f"剩余约 {remaining_hours:.1f} 个工作小时，处置时限为 {local_time(case.deadline_at, tz)}，"
        "请在时限内处置。"
    )
    return mail(subject, intro, [Section("案件", headers=CASE_HEADERS, rows=[case.cells(tz)])], tz)


def figure_lines(figures: Figures) -> list[str]:
    return [
        f"新增案件 {figures.created} 件，立案 {figures.filed} 件，派遣 {figures.dispatched} 件，"
        f"结案 {figures.closed} 件，复发 {figures.recurrences} 件。",
        f"按期结案率 {percent(figures.on_time_closure_rate)}（应结案 {figures.due} 件，"
        f"按期结案 {figures.closed_on_time} 件）；按时处置率 {percent(figures.on_time_handling_rate)}；"
        f"返工率 {percent(figures.rework_rate)}。",
        f"准确立案率 {percent(figures.accurate_filing_rate)}（立案后作废 {figures.voided_after_filing} 件）；"
        f"准确派遣率 {percent(figures.accurate_dispatch_rate)}（回退 {figures.returned} 件）。",
        f"平均派遣用时 {hours(figures.mean_hours_to_dispatch)}；"
        f"平均结案用时 {hours(figures.mean_hours_to_close)}。",
    ]


def weekly_mail(
    period: Period, figures: Figures, overdue_open: Sequence[CaseLine], tz: ZoneInfo
) -> dict[str, str]:
    """周检查: last week's figures and the cases now overdue."""
    words = period_words(period)
    rate = percent(figures.on_time_closure_rate)
    subject = f"【周检查】{words}：按期结案率 {rate}，当前超期 {len(overdue_open)} 件"
    sections = [Section("一周指标", lines=figure_lines(figures))]
    if overdue_open:
        sections.append(
            Section("当前超期在办案件", headers=CASE_HEADERS, rows=[c.cells(tz) for c in overdue_open])
        )
    else:
        sections.append(Section("当前超期在办案件", lines=["无。"]))
    return mail(subject, f"{words} 周检查情况如下。", sections, tz)


def monthly_mail(period: Period, figures: Figures, ranking: Ranking, tz: ZoneInfo) -> dict[str, str]:
    """月通报: the month's figures and the unit ranking (红黑榜) by on-time closure rate."""
    month = f"{period.start.year} 年 {period.start.month} 月"
    subject = f"【月通报】{month}：按期结案率 {percent(figures.on_time_closure_rate)}，单位排名"
    rows = [
        (str(r.rank), r.unit_name, str(r.due), str(r.closed_on_time), percent(r.on_time_closure_rate),
         percent(r.on_time_handling_rate), percent(r.rework_rate))
        for r in ranking.ranked
    ]  # fmt: skip
    headers = ("排名", "单位", "应结案", "按期结案", "按期结案率", "按时处置率", "返工率")
    sections = [Section("全市指标", lines=figure_lines(figures))]
    if rows:
        sections.append(Section("单位排名（按期结案率）", headers=headers, rows=rows))
    else:
        sections.append(Section("单位排名（按期结案率）", lines=["本月没有达到最少案件数的单位。"]))
    if ranking.left_out:
        left = "、".join(f"{u.unit_name}（{u.due} 件）" for u in ranking.left_out)
        sections.append(Section("未参加排名", lines=[f"应结案不足 {ranking.min_cases} 件的单位：{left}。"]))
    return mail(subject, f"{month}数字城管案件处置情况通报如下。", sections, tz)

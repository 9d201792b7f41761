"""Microsoft Teams alerts for ingested files.

Office 365 connectors were retired at the end of 2025; their replacement, Workflows webhooks,
takes an Adaptive Card wrapped in a message and answers 202. That is the default; the legacy
MessageCard (built with pymsteams) is kept for older set-ups (TEAMS_FORMAT=messagecard). Any 2xx
answer counts as delivered. Values from the data are escaped: Teams renders markdown in both.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from mlsys.redact import redact, redact_url
from pipelines.ingestion.result import Criticality, ValidationResult

log = logging.getLogger(__name__)

COLORS = {
    Criticality.NONE: "2E7D32",
    Criticality.LOW: "689F38",
    Criticality.MEDIUM: "EF6C00",
    Criticality.HIGH: "C62828",
}
ADAPTIVE_COLORS = {
    Criticality.NONE: "Good",
    Criticality.LOW: "Good",
    Criticality.MEDIUM: "Warning",
    Criticality.HIGH: "Attention",
}
TOP_ISSUES = 8
# Characters that start markdown emphasis, links, code, headings or tables in Teams. Links
# need `[`: escaping the brackets is enough to keep `[text](url)` from the data inert.
_MARKDOWN = re.compile(r"([\\`*_\[\]#|~])")


class AlertDeliveryError(RuntimeError):
    """The webhook answered something other than 2xx, or could not be reached."""


def escape(value: Any) -> str:
    """Text from the data, made inert for Teams' markdown and HTML rendering."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    text = _MARKDOWN.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def should_alert(criticality: Criticality, minimum: Criticality) -> bool:
    """At least `minimum`; a clean file (none) never pages anybody."""
    return criticality >= minimum and criticality is not Criticality.NONE


def summary_lines(result: ValidationResult) -> list[str]:
    lines = [
        f"{result.rows_invalid} of {result.rows_total} rows invalid",
    ]
    if result.parse_error:
        lines.append(f"not read: {escape(result.parse_error)}")
    issues = sorted(result.issues, key=lambda i: (-i.row_count, i.error_type))
    for issue in issues[:TOP_ISSUES]:
        where = f" in {escape(issue.column)}" if issue.column else ""
        eg = f' (e.g. "{escape(issue.example[:60])}")' if issue.example else ""
        lines.append(f"{escape(issue.error_type)}{where}: {issue.row_count} rows{eg}")
    if len(issues) > TOP_ISSUES:
        lines.append(f"and {len(issues) - TOP_ISSUES} more issues in the report")
    drifting = [d for d in result.drift if d.status == "drift"]
    if drifting:
        lines.append("drift: " + ", ".join(f"{escape(d.feature)} {d.value:.2f}" for d in drifting))
    return lines


def adaptive_card(result: ValidationResult, report_url: str) -> dict[str, Any]:
    crit = result.criticality
    body = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": f"Data quality: {crit.upper()} - {escape(result.file)}",
         "color": ADAPTIVE_COLORS[crit]},
        {"type": "FactSet", "facts": [
            {"title": "Criticality", "value": crit.value},
            {"title": "Rows", "value": str(result.rows_total)},
            {"title": "Invalid rows", "value": str(result.rows_invalid)},
        ]},
        {"type": "TextBlock", "wrap": True, "text": "\n\n".join(f"- {x}" for x in summary_lines(result))},
    ]  # fmt: skip
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Open the report", "url": report_url}
                    ],
                },
            }
        ],
    }


def message_card(result: ValidationResult, report_url: str) -> dict[str, Any]:
    import pymsteams

    card = pymsteams.connectorcard(hookurl="")
    card.title(f"Data quality: {result.criticality.upper()} - {escape(result.file)}")
    card.summary(f"Data quality {result.criticality.value}")
    card.text("<br>".join(summary_lines(result)))
    card.color(COLORS[result.criticality])
    card.addLinkButton("Open the report", report_url)
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions"} | card.payload


def build_payload(result: ValidationResult, report_url: str, fmt: str) -> dict[str, Any]:
    return (
        adaptive_card(result, report_url) if fmt == "adaptive" else message_card(result, report_url)
    )


def _mask_in_task_logs(secret: str) -> None:
    """Register the webhook URL with Airflow's secret masker (inside a task), so that any log
    line or traceback that would show it shows *** instead."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # outside Airflow (the app environment, plain scripts)
        return
    mask_secret(secret)


def post(url: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> int:
    import requests

    _mask_in_task_logs(url)
    try:
        answer = requests.post(url, json=payload, timeout=timeout_s)
    except requests.RequestException as exc:
        # The webhook URL is a credential (its `sig=`), and requests puts it in the exception's
        # text: redact it, and cut the chain so no traceback prints the original.
        raise AlertDeliveryError(
            f"Teams webhook {redact_url(url)} unreachable: {redact(str(exc))}"
        ) from None
    if not 200 <= answer.status_code < 300:
        raise AlertDeliveryError(
            f"Teams webhook answered {answer.status_code}: {redact(answer.text[:200])}"
        )
    return answer.status_code


def send_alert(
    result: ValidationResult,
    *,
    report_url: str,
    webhook_url: str | None,
    fmt: str,
    minimum: Criticality,
) -> dict[str, Any]:
    """Post the alert if the file deserves one; never fails for a missing webhook."""
    if not should_alert(result.criticality, minimum):
        return {
            "sent": False,
            "reason": f"criticality {result.criticality.value} below {Criticality(minimum).value}",
        }
    payload = build_payload(result, report_url, fmt)
    if not webhook_url:
        # The link goes to the task log instead: the only way to the report without Teams.
        log.warning(
            "no TEAMS_WEBHOOK_URL configured; alert not sent: %s; report: %s",
            summary_lines(result),
            report_url,
        )
        return {"sent": False, "reason": "no webhook configured", "report_url": report_url}
    status = post(webhook_url, payload)
    return {"sent": True, "status": status, "format": fmt}


def pipeline_failure_payload(
    title: str,
    facts: list[tuple[str, str]],
    text: str,
    fmt: str,
    link: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A card saying the pipeline itself is broken (a run failed, a file was quarantined or
    refused), as opposed to a data-quality card. link: (button title, URL)."""
    title, text = escape(title), escape(text)
    facts = [(escape(k), escape(v)) for k, v in facts]
    if fmt != "adaptive":
        import pymsteams

        card = pymsteams.connectorcard(hookurl="")
        card.title(title)
        card.summary(title)
        card.text("<br>".join([text] + [f"{k}: {v}" for k, v in facts]))
        card.color(COLORS["high"])
        if link:
            card.addLinkButton(*link)
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions"} | card.payload
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
             "text": title, "color": ADAPTIVE_COLORS["high"]},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]},
            {"type": "TextBlock", "wrap": True, "text": text},
        ],
    }  # fmt: skip
    if link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": link[0], "url": link[1]}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": content,
            }
        ],
    }


def send_pipeline_failure(
    title: str,
    facts: list[tuple[str, str]],
    text: str,
    *,
    webhook_url: str | None,
    fmt: str,
    link: tuple[str, str] | None = None,
) -> bool:
    """Post a pipeline-failure card; without a webhook, log it as a warning. True if posted.
    Raises AlertDeliveryError when the webhook refuses it or cannot be reached."""
    if not webhook_url:
        log.warning("no TEAMS_WEBHOOK_URL configured; pipeline alert not sent: %s: %s", title, text)
        return False
    post(webhook_url, pipeline_failure_payload(title, facts, text, fmt, link))
    return True

"""Microsoft Teams alerts: what counts as a problem, and the cards that tell of it.

A card tells of distinct problems, never of one file for its own sake: the decisions (a card
when a problem appears, a digest in a storm, a cooldown per problem, "resolved") are made in
pipelines/ingestion/alert_state.py, whose state lives in PostgreSQL. This module says what a
judged file, a drift window or a failed task contributes (`file_observation`,
`pipeline_occurrence`), renders the cards and posts them.

Problem keys use the rule or TFDV anomaly and the column (`data_quality:unknown_category:housing`,
`data_quality:tfdv_enum_type_unexpected_string_values:housing`), the feature for drift
(`drift:duration`), the task or event for the pipeline (`pipeline:ingest_data.validate_data`,
`pipeline:quarantined`, `pipeline:refused:symlink`); a file-level rule has no column
(`data_quality:duplicate_row`). Cards name a row rule's TFDV counterpart
(e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES, tensorflow_metadata anomalies.proto) where it has one.

Office 365 connectors were retired at the end of 2025; their replacement, Workflows webhooks,
takes an Adaptive Card wrapped in a message and answers 202. That is the default; the legacy
MessageCard (built with pymsteams) is kept for older set-ups (TEAMS_FORMAT=messagecard). Any 2xx
answer counts as delivered. Values from the data are escaped: Teams renders markdown in both.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from mlsys import report_links
from mlsys.redact import redact, redact_url
from pipelines.ingestion.alert_state import Card, Deliver, Observation, Occurrence
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
TOP_PROBLEMS = 8  # problems listed on a card; the rest are counted
TOP_SOURCES = 5  # worst files listed on a digest
# Characters that start markdown emphasis, links, code, headings or tables in Teams. Links
# need `[`: escaping the brackets is enough to keep `[text](url)` from the data inert.
_MARKDOWN = re.compile(r"([\\`*_\[\]#|~])")

# A row rule's counterpart among TFDV's anomaly types (tensorflow_metadata anomalies.proto,
# AnomalyInfo.Type), so that a card reads in the terms of the schema's tooling; drift by metric.
TFDV_TERMS = {
    "missing_value": "FEATURE_TYPE_LOW_FRACTION_PRESENT",
    "unknown_category": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    "out_of_range": "INT_TYPE_SMALL_INT / INT_TYPE_BIG_INT",
    "not_a_number": "INT_TYPE_NOT_INT_STRING",
    "missing_column": "SCHEMA_MISSING_COLUMN",
    "unexpected_column": "SCHEMA_NEW_COLUMN",
    "jensen_shannon": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
    "l_infinity": "COMPARATOR_L_INFTY_HIGH",
}
LABELS = {"data_quality": "Data quality", "drift": "Drift in the stream", "pipeline": "Pipeline"}


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


# --- what a look contributes -------------------------------------------------------------


def _term(error_type: str) -> str:
    if error_type.startswith("tfdv_"):
        return error_type[len("tfdv_") :].upper()
    return TFDV_TERMS.get(error_type, "")


def issue_title(error_type: str, column: str) -> str:
    """'unknown_category in housing (TFDV: ENUM_TYPE_UNEXPECTED_STRING_VALUES)'."""
    where = f" in {column}" if column else ""
    term = _term(error_type)
    name = error_type[len("tfdv_") :].upper() if error_type.startswith("tfdv_") else error_type
    return f"{name}{where}" + (f" (TFDV: {term})" if term and term != name else "")


def file_observation(
    result: ValidationResult, *, minimum: Criticality, report_name: str
) -> Observation:
    """A judged file's problems (one per issue: rule or TFDV anomaly, and column) and the drift
    of the window it was judged with (one per drifting feature: a condition of the stream).

    Below `minimum` the file's issues are present but not told. Every judged file is a full
    look for data-quality problems; a drift window of enough rows is one for drift.
    """
    occurrences: list[Occurrence] = []
    present: set[str] = set()
    for issue in result.issues:
        key = f"data_quality:{issue.error_type}" + (f":{issue.column}" if issue.column else "")
        if not should_alert(result.criticality, minimum):
            present.add(key)
            continue
        example = f' (e.g. "{issue.example[:60]}")' if issue.example else ""
        occurrences.append(
            Occurrence(
                key=key, kind="data_quality", title=issue_title(issue.error_type, issue.column),
                source=result.file, criticality=result.criticality.value,
                rows_total=result.rows_total,
                rows_affected=issue.row_count,
                detail=f"{issue.description}{example}", report_name=report_name,
                schema=result.schema_version,
            )
        )  # fmt: skip
    looked_for = {"data_quality"}
    window = result.drift_window
    judged = [d for d in result.drift if d.status in ("ok", "drift")]
    if window is not None and judged:
        looked_for.add("drift")
        names = ", ".join(window.names) + (" ..." if window.files > len(window.names) else "")
        where = f"measured on {window.rows} rows of {window.files} file(s): {names}"
        for d in judged:
            if d.status != "drift":
                continue
            term = TFDV_TERMS.get(d.metric, "")
            occurrences.append(
                Occurrence(
                    key=f"drift:{d.feature}", kind="drift",
                    title=f"drift of {d.feature}" + (f" (TFDV: {term})" if term else ""),
                    source=result.file, rows_total=window.rows,
                    detail=f"{d.metric} {d.value:.3f} over the threshold {d.threshold:g}, {where}",
                    report_name=report_name, schema=result.schema_version,
                )
            )  # fmt: skip
    return Observation(tuple(occurrences), frozenset(looked_for), frozenset(present))


def pipeline_occurrence(
    what: str, title: str, source: str, detail: str, *, link: str | None = None
) -> Occurrence:
    """A failed task (`what` = 'dag.task'), a quarantined or refused file ('quarantined',
    'refused:<kind>'): one problem per `what`, one occurrence per `source` (run, file)."""
    return Occurrence(
        key=f"pipeline:{what}", kind="pipeline", title=title, source=source,
        criticality=Criticality.HIGH.value, detail=detail, link=link,
    )  # fmt: skip


# --- links -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where a card's buttons lead: reports and their index under `base_url` (REPORT_BASE_URL),
    signed with REPORT_LINK_KEY (mlsys/report_links.py) when there is one, else unsigned (an
    API token is then needed to open them)."""

    base_url: str
    key: bytes | None = None

    def report(self, name: str) -> str:
        if self.key is None:
            return f"{self.base_url.rstrip('/')}/{quote(name)}"
        return report_links.signed_url(self.base_url, name, self.key)

    def index(self, since: datetime | None = None) -> str:
        """The index of reports, from `since` on (the card's first occurrence)."""
        if self.key is not None:
            return report_links.index_url(self.base_url, self.key, start=since)
        query = urlencode({"start": since.isoformat()}) if since else ""
        return f"{self.base_url.rstrip('/')}/" + (f"?{query}" if query else "")


# --- cards -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A card in words, before its format: title, level, facts, lines, buttons."""

    title: str
    level: Criticality
    facts: list[tuple[str, str]]
    lines: list[str]
    links: list[tuple[str, str]]


def _level(card: Card) -> Criticality:
    if card.kind == "resolved":
        return Criticality.NONE
    levels = [Criticality(s.criticality) for s in card.sources if s.criticality]
    if any(p.kind == "drift" for p in card.problems):
        levels.append(Criticality.MEDIUM)
    return max(levels, default=Criticality.MEDIUM)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def render(card: Card, links: Links) -> Rendered:
    """What a card says. Every card links its reports: a problem card its file's report, a
    digest the worst files' reports and the index of the reports since its first occurrence,
    a pipeline card its task log; a resolved card the index."""
    kinds = {p.kind for p in card.problems}
    label = LABELS[kinds.pop()] if len(kinds) == 1 else LABELS["data_quality"]
    first = card.problems[0].title
    more = f" and {len(card.problems) - 1} more" if len(card.problems) > 1 else ""
    if card.kind == "resolved":
        return Rendered(
            title=f"Resolved: {first}{more}",
            level=Criticality.NONE,
            facts=[("Problems", str(len(card.problems))), ("Since", _when(card.since))],
            lines=[f"{p.title}: last seen {_when(p.last_seen)}" for p in card.problems],
            links=[("Open the index of reports", links.index(card.since))],
        )
    level = _level(card)
    new = [p for p in card.problems if p.new]
    status = "new" if new else "still seen"
    if card.kind == "problem":
        title = f"{label}: {status} - {first}{more}"
    else:
        title = f"{label} digest: {len(card.sources)} files, {len(card.problems)} problem(s)"
    drift_only = label == LABELS["drift"]
    facts = [("Criticality", level.value)]
    if card.kind == "digest":
        facts.append(("Files", str(len(card.sources))))
    else:
        facts.append(("Judged with" if drift_only else "Source", card.sources[0].source))
        if card.sources[0].rows_total is not None:
            facts.append(("Window rows" if drift_only else "Rows", str(card.sources[0].rows_total)))
    facts.append(("Seen", f"{_when(card.since)} - {_when(card.until)}"))
    if card.schemas:  # the schema version(s) the files were judged by (issue 16)
        facts.append(("Schema", ", ".join(card.schemas)))
    lines = []
    for p in card.problems[:TOP_PROBLEMS]:
        tag = "NEW " if p.new else ""
        files = f"{p.sources} file(s)" if card.kind == "digest" else ""
        rows = f"{p.rows_affected} rows" if p.rows_affected else ""
        counts = ", ".join(x for x in (files, rows) if x)
        lines.append(f"{tag}{p.title}" + (f": {counts}" if counts else "") + f" - {p.detail}")
    if len(card.problems) > TOP_PROBLEMS:
        lines.append(f"and {len(card.problems) - TOP_PROBLEMS} more problems")
    buttons: list[tuple[str, str]] = []
    worst = card.sources[:TOP_SOURCES] if card.kind == "digest" else card.sources[:1]
    if card.kind == "digest":
        lines.append("Worst files:")
        for s in worst:
            crit = f"{s.criticality}, " if s.criticality else ""
            rows = f"{s.rows_affected} of {s.rows_total} rows" if s.rows_total else ""
            lines.append(f"{s.source} ({crit}{rows})".replace(", )", ")").replace(" ()", ""))
    for s in worst:
        if s.report_name:
            buttons.append((f"Report: {s.source}"[:60], links.report(s.report_name)))
        elif s.link:
            buttons.append((f"Log: {s.source}"[:60], s.link))
    # The index beside the reports (filterable, newest first); a card about failed runs
    # links their logs only.
    if card.kind == "digest" or not buttons or any(s.report_name for s in worst):
        buttons.append(("Open the index of reports", links.index(card.since)))
    return Rendered(title, level, facts, lines, buttons)


def _adaptive(r: Rendered) -> dict[str, Any]:
    body = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": escape(r.title), "color": ADAPTIVE_COLORS[r.level]},
        {"type": "FactSet", "facts": [{"title": escape(k), "value": escape(v)} for k, v in r.facts]},
        {"type": "TextBlock", "wrap": True, "text": "\n\n".join(f"- {escape(x)}" for x in r.lines)},
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
                        {"type": "Action.OpenUrl", "title": escape(t), "url": u} for t, u in r.links
                    ],
                },
            }
        ],
    }


def _messagecard(r: Rendered) -> dict[str, Any]:
    import pymsteams

    card = pymsteams.connectorcard(hookurl="")
    card.title(escape(r.title))
    card.summary(escape(r.title))
    card.text("<br>".join([f"{escape(k)}: {escape(v)}" for k, v in r.facts]
                          + [escape(x) for x in r.lines]))  # fmt: skip
    card.color(COLORS[r.level])
    for t, u in r.links:
        card.addLinkButton(escape(t), u)
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions"} | card.payload


def build_payload(card: Card, links: Links, fmt: str) -> dict[str, Any]:
    return payload_of(render(card, links), fmt)


def payload_of(rendered: Rendered, fmt: str) -> dict[str, Any]:
    """A card in words as the webhook's body: an Adaptive Card, or a MessageCard."""
    return _adaptive(rendered) if fmt == "adaptive" else _messagecard(rendered)


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


def teams_delivery(webhook_url: str | None, fmt: str, links: Links) -> Deliver:
    """deliver(card) for alert_state: posts to the webhook (True); without one, logs the card
    and its links as a warning (False), the only way to the reports without Teams. Raises
    AlertDeliveryError when the webhook refuses or cannot be reached."""

    def deliver(card: Card) -> bool:
        if links.key is None:
            log.warning(
                "%s is not set: the card links to the reports without a signature",
                report_links.KEY_NAME,
            )
        if not webhook_url:
            r = render(card, links)
            log.warning("no TEAMS_WEBHOOK_URL configured; alert not sent: %s: %s; links: %s",
                        r.title, r.lines, [u for _, u in r.links])  # fmt: skip
            return False
        post(webhook_url, build_payload(card, links, fmt))
        return True

    return deliver

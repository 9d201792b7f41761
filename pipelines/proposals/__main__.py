"""The curator's commands (app environment; `make schema-propose`, `make schema-approve ID`,
`make schema-reject ID`, `make schema-proposals`):

    python -m pipelines.proposals propose
    python -m pipelines.proposals list [--status proposed]
    python -m pipelines.proposals show ID
    python -m pipelines.proposals approve ID [--reason TEXT] [--by NAME]
    python -m pipelines.proposals reject ID [--reason TEXT] [--by NAME]

`--json` prints the result as one JSON line (what the Airflow tasks read). Exit status 0 on
success, 1 when a decision is refused (already decided, the schema changed where it edits), 2
for bad arguments, 3 when the database cannot be reached (no credentials, server down). The database is the configured one (DATABASE_URL, MLSYS_DB_ROLE).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from pipelines.proposals.proposals import Proposal


class DatabaseUnreachable(RuntimeError):
    """The configured database cannot be reached (no credentials, server down, refused)."""


def _connect():
    """A connection to the configured database; DatabaseUnreachable with a one-line reason."""
    import psycopg2

    from mlsys.config import get_settings
    from mlsys.credentials import SecretError
    from mlsys.db import psycopg2_dsn
    from mlsys.redact import redact

    try:
        return psycopg2.connect(psycopg2_dsn(get_settings().database_url), connect_timeout=10)
    except SecretError as exc:
        raise DatabaseUnreachable(str(exc)) from None
    except psycopg2.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["no reason given"])[0]
        raise DatabaseUnreachable(
            f"cannot reach the database ({redact(first)}); is the system up? `make status` says"
        ) from None


def describe(p: Proposal, *, with_diff: bool = True) -> str:
    e = p.evidence
    lines = [
        f"#{p.id} [{p.status}] {p.title}",
        f"  evidence: {e['files_seen']} of {e['window_files']} recent files "
        f"({e['file_share']:.0%}), {e['rows']} of {e['window_rows']} rows ({e['row_share']:.1%})",
        "  files: " + ", ".join(f"{f['file']} ({f['rows']}/{f['rows_total']})" for f in e["files"]),
    ]
    if e.get("left_out"):
        lines.append("  left out (far beyond the others): "
                     + ", ".join(f"{f['file']} ({f['extreme']:g})" for f in e["left_out"]))  # fmt: skip
    lines.append(f"  proposed {p.created_at:%Y-%m-%d %H:%M} UTC against schema v{p.base_version}")
    if p.decided_at:
        why = f": {p.decided_reason}" if p.decided_reason else ""
        lines.append(f"  {p.status} by {p.decided_by} via {p.decided_via} at "
                     f"{p.decided_at:%Y-%m-%d %H:%M} UTC{why}"
                     + (f" -> schema v{p.schema_version}" if p.schema_version else ""))  # fmt: skip
    if with_diff:
        lines.append(p.diff.rstrip("\n"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.proposals", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("propose", help="propose changes from the recent files' evidence")
    listing = sub.add_parser("list", help="the proposals, newest first")
    listing.add_argument("--status", choices=["proposed", "approved", "rejected"])
    show = sub.add_parser("show", help="one proposal with its diff and evidence")
    show.add_argument("id", type=int)
    for name in ("approve", "reject"):
        cmd = sub.add_parser(name, help=f"{name} a proposal (one action)")
        cmd.add_argument("id", type=int)
        cmd.add_argument("--reason", default=None, help="why (recorded)")
        cmd.add_argument("--by", default=None, help="who (default: your login name)")
        cmd.add_argument("--via", default="make", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from mlsys.config import get_settings
    from pipelines.config import get_pipeline_settings
    from pipelines.proposals import proposals as core
    from pipelines.proposals.candidates import ProposalSettings

    settings = get_settings()
    try:
        conn = _connect()
    except DatabaseUnreachable as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"error: {exc}",
              file=sys.stdout if args.json else sys.stderr)  # fmt: skip
        return 3
    try:
        if args.command == "propose":
            ps = get_pipeline_settings()
            drafter = core.make_drafter(ps.tfdv_worker_url, ps.tfdv_python,
                                        ps.tfdv_worker_timeout_s)  # fmt: skip
            found = core.propose(conn, settings.schema_path, ProposalSettings.from_env(), drafter)
            result: list[Proposal] = found
            if not args.json and not found:
                print("no new proposal: the recent files' evidence supports no other change")
        elif args.command == "list":
            result = core.list_proposals(conn, status=args.status)
        elif args.command == "show":
            one = core.get_proposal(conn, args.id)
            if one is None:
                print(f"there is no schema proposal #{args.id}", file=sys.stderr)
                return 1
            result = [one]
        else:
            try:
                decided = core.decide(
                    conn, args.id, approve=args.command == "approve",
                    by=args.by or getpass.getuser(), reason=args.reason, via=args.via,
                    schema_path=settings.schema_path, target=settings.target_column,
                )  # fmt: skip
            except core.ProposalError as exc:
                print(json.dumps({"error": str(exc)}) if args.json else f"refused: {exc}",
                      file=sys.stdout if args.json else sys.stderr)  # fmt: skip
                return 1
            result = [decided]
    finally:
        conn.close()
    if args.json:
        print(json.dumps([p.to_dict() for p in result]))
    else:
        for p in result:
            print(describe(p, with_diff=args.command != "list"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The health insurer (Assurance Maladie) as a system actor: its credentials, its feed of reimbursement
histories over the professional API (ITI-65, docs/insurer-feed.md) and the ``carnet insurer`` commands."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from backend.insurer import messages  # noqa: F401  (texts)
    from backend.insurer.cli import insurer_group

    app.cli.add_command(insurer_group)

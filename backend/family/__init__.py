"""The family space: a minor's legal representatives and an adult's carers ("aidants").

Links between accounts (``models``), their lifecycle (``service``: activating a minor's record, inviting a
second representative, naming a carer, revoking, majority), and their routes (``api``). What a
representative or a carer may read and write in the record is decided in ``backend.records.access.policy``.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from backend.family import messages  # noqa: F401
    from backend.family import tasks  # noqa: F401  (the majority job)
    from backend.family.api import blp
    from backend.family.cli import family_group

    app.extensions["carnet.api"].register_blueprint(blp)
    app.cli.add_command(family_group)

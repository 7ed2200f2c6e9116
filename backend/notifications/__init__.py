"""Notifications: records delivered in the in-app centre, by Web Push to each signed-in device, and by
email through the outbox; the patient's preferences per kind; the periodic jobs that deliver them."""
from __future__ import annotations

from flask import Flask

from backend.config import add_defaults


def init_app(app: Flask) -> None:
    from backend.notifications import messages  # noqa: F401  (registers the texts)
    from backend.notifications import tasks  # noqa: F401  (tasks, periodic jobs, the outbox trigger)
    from backend.notifications import welcome  # noqa: F401  (registers the activation handler)
    from backend.notifications.api import blp
    from backend.notifications.cli import notifications_group, push_group
    from backend.notifications.settings import DEFAULTS, NotificationSettings, check

    add_defaults(app.config, DEFAULTS)
    check(app.config)
    app.extensions["carnet.notifications"] = NotificationSettings.from_config(app.config, app.instance_path)
    app.extensions["carnet.api"].register_blueprint(blp)
    app.cli.add_command(push_group)
    app.cli.add_command(notifications_group)

"""Readiness checks every API process has: the control database and the served-data folder."""

from __future__ import annotations

import os

import sqlalchemy as sa

from serving.lib.ready import add_ready_check
from serving.lib.services import Services
from shared.control.db import get_engine


def check_control_db(services: Services) -> None:
    with get_engine(services.control_url).connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def check_served_data(services: Services) -> None:
    path = services.settings.served_path
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.R_OK | os.X_OK):
        raise PermissionError("served-data folder is not readable")
    next(iter(os.scandir(path)), None)


async def startup(services: Services) -> None:
    add_ready_check(services, "control_db", check_control_db)
    add_ready_check(services, "served_data", check_served_data)

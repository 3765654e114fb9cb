"""Readiness checks every API process has: the control database and the served-data folder.

Both are required: without them no request can be authorised or answered, so ``/ready``
answers 503 while either fails (see ``serving.lib.ready``).
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from serving.lib.ready import NotReady, add_ready_check
from serving.lib.services import Services
from shared.control.db import get_engine


def check_control_db(services: Services) -> None:
    try:
        with get_engine(services.control_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:  # the URL and host stay in the log
        raise NotReady(f"the control database is unreachable ({type(e).__name__})") from e


def check_served_data(services: Services) -> None:
    path = services.settings.served_path
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.R_OK | os.X_OK):
        raise NotReady("the served-data folder is not readable")
    if services.settings.served.remote and not os.access(path, os.W_OK):  # the replica's cache: downloads land here
        raise NotReady("the served-data cache folder is not writable")
    next(iter(os.scandir(path)), None)


async def startup(services: Services) -> None:
    add_ready_check(services, "control_db", check_control_db,
                    impact="tokens, the catalog and queries cannot be served")
    add_ready_check(services, "served_data", check_served_data,
                    impact="queries, samples and exports cannot read served tables")

"""Python client for the agents-data API.

``Client(base_url, token)`` and ``AsyncClient`` cover the agent's calls: the catalog,
queries (inline, async jobs, Arrow, pandas, files, continuations), samples, profiles,
refreshes and artifacts. Results are dataclasses; errors are :class:`ApiError` subclasses
mapped from the API's error shape (``rule`` kept); 429 and 503 are retried with backoff,
honouring ``Retry-After``.
"""

from agents_data_client._core import JobFailed, RetryPolicy
from agents_data_client.aclient import AsyncClient
from agents_data_client.client import Client
from agents_data_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Timeout,
    Unauthorized,
    Unavailable,
)
from agents_data_client.types import (
    Artifact,
    Column,
    Continuation,
    Freshness,
    Limit,
    Profile,
    QueryJob,
    QueryResult,
    Refresh,
    RowsPage,
    Sample,
    Table,
    TableVersion,
)

__all__ = [
    "ApiError",
    "Artifact",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Column",
    "Conflict",
    "Continuation",
    "Forbidden",
    "Freshness",
    "Gone",
    "JobFailed",
    "Limit",
    "NotFound",
    "PayloadTooLarge",
    "Profile",
    "QueryJob",
    "QueryResult",
    "RateLimited",
    "Refresh",
    "RetryPolicy",
    "RowsPage",
    "Sample",
    "ServerError",
    "Table",
    "TableVersion",
    "Timeout",
    "Unauthorized",
    "Unavailable",
]

"""Reload the code location through Dagster's GraphQL API after a registry change.

Why GraphQL and not a restart: the webserver and daemon keep running, the code server
re-imports ``orchestration.definitions``, which re-reads the registry; the API calls the
same ``reloadRepositoryLocation`` mutation through its own client.
"""

from __future__ import annotations

import dataclasses
import time

import httpx

RELOAD = """
mutation Reload($location: String!) {
  reloadRepositoryLocation(repositoryLocationName: $location) {
    __typename
    ... on WorkspaceLocationEntry { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } }
    ... on ReloadNotSupported { message }
    ... on RepositoryLocationNotFound { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
STATUS = """
query Status($location: String!) {
  workspaceLocationEntryOrError(name: $location) {
    __typename
    ... on WorkspaceLocationEntry { loadStatus locationOrLoadError { __typename ... on PythonError { message } } }
    ... on PythonError { message }
  }
}
"""


class ReloadError(RuntimeError):
    """The location could not be reloaded or failed to load; the message carries Dagster's error."""


@dataclasses.dataclass(frozen=True)
class Reloaded:
    location: str
    seconds: float


def _post(client: httpx.Client, url: str, query: str, variables: dict[str, str]) -> dict:
    resp = client.post(url, json={"query": query, "variables": variables})
    resp.raise_for_status()
    body = resp.json()
    if body.get("errors"):
        raise ReloadError(f"GraphQL error from {url}: {body['errors']}")
    return body["data"]


def _check(entry: dict, location: str) -> bool:
    """True when loaded; raises on a load error; False while loading."""
    if entry.get("message") and entry["__typename"] != "WorkspaceLocationEntry":
        raise ReloadError(f"reloading {location!r} failed: {entry['__typename']}: {entry['message']}")
    loaded = entry.get("locationOrLoadError") or {}
    if loaded.get("__typename") == "PythonError":
        raise ReloadError(f"code location {location!r} failed to load: {loaded.get('message')}")
    return entry.get("loadStatus") == "LOADED" and bool(loaded)


def wait_until_loaded(graphql_url: str, location_name: str, *, timeout_s: float = 120.0) -> float:
    """Wait until ``location_name`` is loaded (e.g. after the webserver starts); returns seconds waited."""
    t0 = time.monotonic()
    with httpx.Client(timeout=timeout_s) as client:
        while True:
            entry = _post(client, graphql_url, STATUS, {"location": location_name})["workspaceLocationEntryOrError"]
            if _check(entry, location_name):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                raise ReloadError(f"code location {location_name!r} still loading after {timeout_s}s")
            time.sleep(0.25)


def reload_code_location(graphql_url: str, location_name: str, *, timeout_s: float = 120.0) -> Reloaded:
    """Reload ``location_name`` and wait until it is loaded again; raise ``ReloadError`` on failure."""
    t0 = time.monotonic()
    with httpx.Client(timeout=timeout_s) as client:
        entry = _post(client, graphql_url, RELOAD, {"location": location_name})["reloadRepositoryLocation"]
        while not _check(entry, location_name):
            if time.monotonic() - t0 > timeout_s:
                raise ReloadError(f"code location {location_name!r} still loading after {timeout_s}s")
            time.sleep(0.25)
            entry = _post(client, graphql_url, STATUS, {"location": location_name})["workspaceLocationEntryOrError"]
    return Reloaded(location=location_name, seconds=time.monotonic() - t0)

"""Making sure a task's image is on this node: look, then one pull with a deadline."""

from __future__ import annotations

import time

import docker
from docker.errors import APIError, ImageNotFound
from docker.utils import parse_repository_tag

from taskorg.slave.runner.docker_state import explain

PULL_TIMEOUT = 20.0  # a pull must finish in this time, or the start fails


def ensure_image(client: docker.DockerClient, image: str, node: str) -> str | None:
    """None when the image is here (or was pulled); else why it is not."""
    try:
        client.images.get(image)
        return None
    except ImageNotFound:
        pass
    except APIError as exc:  # e.g. an invalid reference: pulling cannot help
        return f"image {image} cannot be used on {node}: {explain(exc)}"
    try:
        pull(client, image)
        return None
    except Exception as exc:  # any failure to pull ends in the same answer
        reason = explain(exc) if isinstance(exc, APIError) else str(exc) or type(exc).__name__
        return f"image {image} not found on {node} and could not be pulled: {reason}"


def pull(client: docker.DockerClient, image: str) -> None:
    """One pull with a deadline (docker-py's own pull has no timeout)."""
    repository, tag = parse_repository_tag(image)
    params = {"fromImage": repository, "tag": tag or "latest"}
    api = client.api
    deadline = time.monotonic() + PULL_TIMEOUT
    response = api._post(api._url("/images/create"), params=params, stream=True, timeout=PULL_TIMEOUT)
    api._raise_for_status(response)
    try:
        for event in api._stream_helper(response, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise RuntimeError(event["error"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"pull took longer than {PULL_TIMEOUT:g}s")
    finally:
        response.close()
    client.images.get(image)  # raises when the pull "succeeded" without an image

"""Making sure a task's image is on this node: look, then one pull with a deadline.

The pull goes through docker-py's public API, which sends the registry's
credentials from this node's Docker config (`~/.docker/config.json`, or
`$DOCKER_CONFIG/config.json`) as `docker login` left them. docker-py's pull
has no deadline of its own, so it runs in a thread that the start waits for
up to the setting `image_pull_timeout`; a pull still running then is given up
(its stream is closed as soon as it yields again, which cancels it in dockerd).
"""

from __future__ import annotations

import threading
import time

import docker
from docker.errors import APIError, ImageNotFound
from docker.utils import parse_repository_tag

from taskorg.slave.runner.docker_state import explain

DEFAULT_PULL_TIMEOUT = 300.0


class PullFailed(Exception):
    """A pull ended without the image; the text says why."""


def ensure_image(client: docker.DockerClient, image: str, node: str, platform: str | None = None,
                 timeout: float = DEFAULT_PULL_TIMEOUT) -> str | None:
    """None when the image is here (or was pulled); else why it is not."""
    try:
        client.images.get(image)
        return None
    except ImageNotFound:
        pass
    except APIError as exc:  # e.g. an invalid reference: pulling cannot help
        return f"image {image} cannot be used on {node}: {explain(exc)}"
    try:
        pull(client, image, platform, timeout)
        return None
    except Exception as exc:  # any failure to pull ends in the same answer
        reason = explain(exc) if isinstance(exc, APIError) else str(exc) or type(exc).__name__
        return f"image {image} not found on {node} and could not be pulled: {reason}"


def pull(client: docker.DockerClient, image: str, platform: str | None, timeout: float) -> None:
    """One pull, given up after `timeout` seconds (PullFailed, TimeoutError or docker's APIError)."""
    repository, tag = parse_repository_tag(image)
    deadline = time.monotonic() + timeout
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True,
                                         platform=platform):
                if isinstance(event, dict) and event.get("error"):
                    raise PullFailed(event["error"])
                if time.monotonic() > deadline:
                    return  # given up: leaving the loop closes the stream
            outcome.append(None)
        except BaseException as exc:  # handed to the waiting start
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"pull {image}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise TimeoutError(f"the pull took longer than {timeout:g} s (setting image_pull_timeout)")
    if outcome[0] is not None:
        raise outcome[0]
    client.images.get(image)  # raises when the pull "succeeded" without an image

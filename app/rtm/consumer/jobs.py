"""The consumer jobs, as the catalogue defines them: which topics they read, which rules they
apply."""

from __future__ import annotations

from rtm.catalogue import Job, catalogue

JOBS: tuple[Job, ...] = catalogue().jobs


def job(name: str) -> Job:
    return catalogue().job(name)

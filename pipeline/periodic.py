"""A background job that runs one turn every `interval_s` until stopped (purge, retention,
price reloads): start/stop once here, the turn and what a failed turn means in each job."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from pipeline.errors import StoreError


class Periodic(ABC):
    name = "periodic"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def turn(self) -> object:
        """One turn of the job."""

    @abstractmethod
    def failed(self, exc: StoreError) -> None:
        """A turn the store failed (logged, recorded); the next one tries again."""

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.turn()
            except StoreError as exc:
                self.failed(exc)

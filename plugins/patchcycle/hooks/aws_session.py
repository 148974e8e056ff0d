"""The boto3 sessions of every AWS hook, sharing one process-wide cache of botocore's service models.

The Amazon provider builds a new ``boto3.session.Session`` for every hook, and every new session gets a
new botocore ``Loader``, which reads and decodes the service's JSON model again for each client: about
0.2 s for S3 or SSM and 0.4 s for EC2 on this project's machine, against 0.02 to 0.14 s when the model
is already loaded. A task makes a few clients, but the triggerer and ``airflow dags test`` run many
tasks' waits in one process, and there the decoding dominated.

The provider already shares one loader for its deferrable (aiobotocore) sessions
(``base_aws.BaseSessionFactory.get_async_session`` registers its module-level ``_loader`` as each
session's ``data_loader``); this factory does the same for the synchronous sessions. Only static data is
shared (service models, endpoint rules, paginators); credentials, region and configuration stay per
session. Airflow uses it when ``[aws] session_factory`` names it (the provider's documented extension
point, "Session Factory" in the Amazon provider's AWS connection guide): the deployment sets
``AIRFLOW__AWS__SESSION_FACTORY=patchcycle.hooks.aws_session.SharedModelSessionFactory``.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

SESSION_FACTORY = f"{__name__}.SharedModelSessionFactory"


class _SearchPaths(list[str]):
    """A loader's search paths, where appending a path already present changes nothing: boto3 appends its
    own data folder to the loader of every Session it builds, which for a shared loader would grow the
    list by one entry per session for the life of the process."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


class SharedModelLoader(botocore.loaders.Loader):
    """botocore's Loader (it caches each model it has read), with search paths that do not grow."""

    def __init__(self) -> None:
        super().__init__()
        self._paths = _SearchPaths(super().search_paths)

    @property
    def search_paths(self) -> list[str]:
        """The loader's search paths: appending a path already in them is a no-op."""
        return self._paths


SHARED_LOADER = SharedModelLoader()


def shared_core_session() -> botocore.session.Session:
    """A new botocore session (its own credentials and settings) reading models through ``SHARED_LOADER``."""
    core = botocore.session.get_session()
    core.register_component("data_loader", SHARED_LOADER)
    return core


class SharedModelSessionFactory(BaseSessionFactory):
    """The provider's session factory, every synchronous session reading models through ``SHARED_LOADER``.

    Basic sessions (keys, profile or the default chain) are built on a botocore session that has the
    shared loader from the start. Assumed-role sessions are built by the provider (its refreshable
    credentials are untouched) and get the shared loader before any client is made from them.
    """

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        return boto3.session.Session(botocore_session=shared_core_session(), **session_kwargs)

    def _create_session_with_assume_role(
        self, session_kwargs: dict[str, Any], deferrable: bool = False
    ) -> boto3.session.Session | AioSession:
        session = super()._create_session_with_assume_role(session_kwargs, deferrable=deferrable)
        if isinstance(session, boto3.session.Session):
            # boto3.Session keeps its botocore session as ``_session`` and has no public accessor; clients
            # read the loader from that session's components when they are created.
            session._session.register_component("data_loader", SHARED_LOADER)
        return session


class CallerFromFrames:
    """The Amazon provider's caller lookup for its user agent, without reading source files.

    Every client the provider makes carries ``Caller/<operator class>`` in its user agent. The provider
    finds that class with ``inspect.stack()``, which builds a ``FrameInfo`` for every frame of the stack
    and for each one searches ``sys.modules`` and reads source lines that it then drops: 0.05 to 0.2 s per
    client here, most of a small task's time. These two lookups return the same names (the class of
    ``self`` in the most recent frame running ``target_function_name``, else the last class of the first
    frame whose module defines a ``BaseExecutor``) by walking the frames themselves. Mixed in before the
    provider's hook class; they override the provider's private static methods of the same names
    (``AwsGenericHook._find_operator_class_name`` and ``_find_executor_class_name``).
    """

    @staticmethod
    def _find_operator_class_name(target_function_name: str) -> str | None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == target_function_name:
                return type(frame.f_locals["self"]).__name__
            frame = frame.f_back
        return None

    @staticmethod
    def _find_executor_class_name() -> str | None:
        frame = sys._getframe(1)
        while frame is not None:
            classes = [name for name, obj in frame.f_globals.items() if inspect.isclass(obj)]
            if "BaseExecutor" in classes:
                return classes[-1]
            frame = frame.f_back
        return None

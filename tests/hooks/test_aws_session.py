"""``SharedModelSessionFactory`` against fleetsim: sessions of every kind (keys, an assumed role) read
botocore's service models once per process and keep their own credentials; ``CallerFromFrames`` names
the same caller in the user agent as the provider's own lookup."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook, AwsGenericHook, resolve_session_factory
from botocore.loaders import JSONFileLoader
from fleetsim_testkit import scenario_dict

from devtools.local import SESSION_FACTORY, aws_connection
from patchcycle.hooks import aws_session
from patchcycle.hooks.aws_session import CallerFromFrames, SharedModelLoader, SharedModelSessionFactory
from patchcycle.hooks.s3 import EvidenceBucketHook

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("hooks-aws-session")]

ACCOUNT = "111111111111"
SCENARIO = scenario_dict(tenants=[], catalog=[])


class CountingFileLoader(JSONFileLoader):
    """botocore's JSON file loader, counting the files it reads and decodes."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load_file(self, file_path: str) -> Any:
        found = super().load_file(file_path)
        if found is not None:
            self.loaded.append(file_path)
        return found


@pytest.fixture
def loader(monkeypatch) -> CountingFileLoader:
    """A fresh shared loader for the test, reading files through a counter."""
    shared = SharedModelLoader()
    counter = CountingFileLoader()
    shared.file_loader = counter
    monkeypatch.setattr(aws_session, "SHARED_LOADER", shared)
    return counter


def factory(fleet, monkeypatch, conn_id: str, role_account: str | None = None) -> SharedModelSessionFactory:
    connection = aws_connection(fleet.url, "us-east-1", role_account)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection)
    return SharedModelSessionFactory(conn=AwsBaseHook(aws_conn_id=conn_id).conn_config)


def test_the_deployment_names_this_factory_and_the_provider_resolves_it(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__AWS__SESSION_FACTORY", SESSION_FACTORY)
    assert resolve_session_factory() is SharedModelSessionFactory


def test_a_second_session_reads_no_model_file_again(fleet, monkeypatch, loader) -> None:
    make = factory(fleet, monkeypatch, "shared_keys")
    first = make.create_session()
    first.client("s3", endpoint_url=fleet.url).list_buckets()
    read_once = list(loader.loaded)
    assert any("/s3/" in path for path in read_once), read_once

    for _ in range(3):
        factory(fleet, monkeypatch, "shared_keys").create_session().client(
            "s3", endpoint_url=fleet.url
        ).list_buckets()
    assert loader.loaded == read_once


def test_an_assumed_role_session_shares_models_and_keeps_its_own_credentials(
    fleet, monkeypatch, loader
) -> None:
    keys = factory(fleet, monkeypatch, "shared_keys").create_session()
    keys.client("s3", endpoint_url=fleet.url).list_buckets()
    read_by_keys = list(loader.loaded)

    role = factory(fleet, monkeypatch, "shared_role", ACCOUNT).create_session()
    role.client("s3", endpoint_url=fleet.url).list_buckets()

    assert [p for p in loader.loaded if "/s3/" in p] == [p for p in read_by_keys if "/s3/" in p]
    assert keys.get_credentials().get_frozen_credentials().token is None
    assert role.get_credentials().get_frozen_credentials().token  # the assumed role's, not the keys'


def test_search_paths_do_not_grow_with_sessions(fleet, monkeypatch, loader) -> None:
    make = factory(fleet, monkeypatch, "shared_keys")
    make.create_session()
    paths = list(aws_session.SHARED_LOADER.search_paths)
    for _ in range(20):
        factory(fleet, monkeypatch, "shared_keys").create_session()
    assert aws_session.SHARED_LOADER.search_paths == paths


class PatchSomething:
    """Stands for an operator: the provider names the class whose ``execute`` made the client."""

    def execute(self, lookup: Any) -> str | None:
        return lookup("execute")


def test_the_caller_is_the_class_the_provider_would_name() -> None:
    ours, providers = CallerFromFrames._find_operator_class_name, AwsGenericHook._find_operator_class_name
    assert PatchSomething().execute(ours) == PatchSomething().execute(providers) == "PatchSomething"
    assert ours("no_such_function") is None is providers("no_such_function")
    assert CallerFromFrames._find_executor_class_name() == AwsGenericHook._find_executor_class_name()


def test_a_hooks_client_names_its_caller_in_the_user_agent(fleet, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CALLER_KEYS", aws_connection(fleet.url, "us-east-1"))

    class WriteEvidence:
        def execute(self) -> Any:
            return EvidenceBucketHook(aws_conn_id="caller_keys").get_conn()

    assert "Caller/WriteEvidence" in WriteEvidence().execute().meta.config.user_agent_extra

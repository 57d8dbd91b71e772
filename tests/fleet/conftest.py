"""A real PostgreSQL for the fleet's tests: one throwaway cluster per session (initdb + pg_ctl on 127.0.0.1, a
free port), and a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from tradeguard.fleet.cluster import ThrowawayCluster, server_binaries

from ..conftest import require

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayCluster]:
    require(server_binaries() is not None, "PostgreSQL server binaries (Debian package postgresql)")
    with ThrowawayCluster() as cluster:
        yield cluster


def fresh_database(cluster: ThrowawayCluster) -> str:
    name = f"fleet_{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def fleet_url(postgres: ThrowawayCluster) -> str:
    return fresh_database(postgres)

"""Shared fixtures: the personas, record factories and the real directory servers."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import Group, User

from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
from tests.ldapservers import samba, slapd, tls_files, unique_name_fixture  # noqa: F401  (fixtures)

PERSONAS = {
    "alice": "Administrators",
    "bob": "Operators",
    "carol": "Viewers",
    "dave": None,
}
PERSONA_PASSWORD = "correct horse battery staple 42"
_counter = itertools.count(1)


def make_persona(name: str) -> User:
    """Create one of the named personas with its role."""
    user = User.objects.create_user(name, f"{name}@example.test", PERSONA_PASSWORD)
    if PERSONAS[name]:
        user.groups.add(Group.objects.get(name=PERSONAS[name]))
    return user


@pytest.fixture
def alice(db):
    return make_persona("alice")


@pytest.fixture
def bob(db):
    return make_persona("bob")


@pytest.fixture
def carol(db):
    return make_persona("carol")


@pytest.fixture
def dave(db):
    return make_persona("dave")


@pytest.fixture
def personas(alice, bob, carol, dave):
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave}


def make_configuration(**fields) -> PamConfiguration:
    fields.setdefault("title", f"Configuration {next(_counter)}")
    return PamConfiguration.objects.create(**fields)


def make_directory(configuration=None, **fields) -> PamDirectory:
    fields.setdefault("title", f"Directory {next(_counter)}")
    fields.setdefault("hostname", "127.0.0.1")
    fields.setdefault("directory_type", DirectoryType.OPENLDAP)
    return PamDirectory.objects.create(configuration=configuration or make_configuration(), **fields)


def make_user(configuration=None, password: str = "", **fields) -> PamUser:
    fields.setdefault("title", f"User {next(_counter)}")
    fields.setdefault("login", fields["title"].lower().replace(" ", ""))
    if configuration is None:
        resource = fields.get("resource")
        configuration = resource.configuration if resource else make_configuration()
    user = PamUser(configuration=configuration, **fields)
    user.set_password(password)
    user.save()
    return user

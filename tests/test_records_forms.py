"""Record forms: every validation rule gives a clear message and saves nothing; passwords are write-only."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from records.forms import ConfigurationForm, DirectoryForm, UserForm
from records.models import DirectoryType, PamConfiguration, PamDirectory, PamUser
from tests.conftest import examples, make_configuration, make_directory, make_user


def make_ca_pem(name: str = "pamrotate test CA") -> str:
    """Return a fresh self-signed CA certificate as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def configuration_data(**overrides) -> dict:
    """Return valid POST data for a configuration form."""
    data = {
        "title": "Production",
        "environment": "local",
        "gateway": "default",
        "application_folder": "",
        "network_id": "",
        "network_cidr": "",
        "port_mapping": "",
        "rotation_enabled": "on",
        "schedule_type": "ON_DEMAND",
        "schedule_time": "",
        "schedule_interval": "1",
        "schedule_weekday": "",
        "schedule_day": "",
        "schedule_week": "",
        "schedule_cron": "",
        "schedule_tz": "UTC",
        "default_password_complexity": "20,1,1,1,1",
        "heartbeat_hours": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def directory_data(configuration, **overrides) -> dict:
    """Return valid POST data for a directory form."""
    data = {
        "title": "Corp LDAP",
        "configuration": str(configuration.pk),
        "directory_type": DirectoryType.OPENLDAP,
        "hostname": "ldap.example.com",
        "port": "636",
        "use_ssl": "on",
        "verify_certificate": "on",
        "ca_certificate": "",
        "alternative_ips": "",
        "domain_name": "example.com",
        "user_match": "ou=people,dc=example,dc=com",
        "administrative_credential": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def user_data(configuration, directory=None, **overrides) -> dict:
    """Return valid POST data for a user form."""
    data = {
        "title": "svc-backup",
        "configuration": str(configuration.pk),
        "login": "svc-backup",
        "password": "",
        "distinguished_name": "cn=svc-backup,ou=people,dc=example,dc=com",
        "rotation_enabled": "on" if directory else None,
        "resource": str(directory.pk) if directory else "",
        "password_complexity": "",
        "schedule_type": "WEEKLY",
        "schedule_time": "02:00",
        "schedule_interval": "1",
        "schedule_weekday": "6",
        "schedule_day": "",
        "schedule_week": "",
        "schedule_cron": "",
        "schedule_tz": "Europe/Berlin",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def counts() -> tuple[int, int, int]:
    return PamConfiguration.objects.count(), PamDirectory.objects.count(), PamUser.objects.count()


def assert_rejected(form, field: str, message: str) -> None:
    """The form is invalid with the message on the field and saving is impossible."""
    before = counts()
    assert not form.is_valid()
    errors = " ".join(form.errors.get(field, []))
    assert message in errors, form.errors
    with pytest.raises(ValueError):
        form.save()
    assert counts() == before


# Configuration ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_good_configuration_form_saves():
    form = ConfigurationForm(
        configuration_data(network_cidr="10.0.0.7/24", port_mapping="32636 = ldaps\n\n389=ldap")
    )
    assert form.is_valid(), form.errors
    configuration = form.save()
    assert configuration.network_cidr == "10.0.0.0/24"
    assert configuration.port_mapping == "32636=ldaps\n389=ldap"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"network_cidr": "10.0.0.0/33"}, "network_cidr", "CIDR form"),
        ({"network_cidr": "not a network"}, "network_cidr", "CIDR form"),
        ({"port_mapping": "ldaps"}, "port_mapping", "Line 1: write one mapping a line as PORT=NAME"),
        ({"port_mapping": "389=ldap\n70000=ldaps"}, "port_mapping", "Line 2"),
        ({"default_password_complexity": "8,3,3,3,3"}, "default_password_complexity", "more than the length"),
        ({"default_password_complexity": "20,1,1,1,1,"}, "default_password_complexity", "none are allowed"),
        ({"default_password_complexity": "twenty"}, "default_password_complexity", "length,upper"),
        ({"schedule_type": "CRON", "schedule_cron": "61 * * * *"}, "schedule_cron", "not a valid cron"),
        ({"schedule_type": "CRON", "schedule_cron": "*/5 * * * *"}, "schedule_cron", "at most once an hour"),
        ({"schedule_type": "CRON", "schedule_cron": "0 0 L * ?"}, "schedule_cron", "standard cron cannot"),
        (
            {"schedule_type": "DAILY", "schedule_time": "02:00", "schedule_tz": "Mars/Olympus"},
            "schedule_tz",
            "not an IANA time zone",
        ),
        ({"schedule_type": "DAILY", "schedule_time": ""}, "schedule_type", "pick the time of day"),
        # Not offered (issue 16); a crafted POST is still refused.
        ({"schedule_type": "USE_DEFAULT"}, "schedule_type", "not one of the available choices"),
    ],
)
def test_a_configuration_form_rejects_bad_input(overrides, field, message):
    assert_rejected(ConfigurationForm(configuration_data(**overrides)), field, message)


@pytest.mark.django_db
def test_configuration_titles_are_unique():
    make_configuration(title="Production")
    assert_rejected(ConfigurationForm(configuration_data()), "title", "already exists")


# Directory -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_good_directory_form_saves_with_a_ca_bundle():
    configuration = make_configuration()
    bundle = make_ca_pem("root") + make_ca_pem("intermediate")
    form = DirectoryForm(
        directory_data(configuration, ca_certificate=bundle, alternative_ips="10.0.0.2, 10.0.0.3\nfe80::1")
    )
    assert form.is_valid(), form.errors
    directory = form.save()
    assert directory.alternative_ip_list == ["10.0.0.2", "10.0.0.3", "fe80::1"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hostname", ["127.0.0.1", "::1", "dc1", "dc1.corp.example.com", "xn--bcher-kva.example"]
)
def test_a_directory_accepts_names_and_addresses(hostname):
    form = DirectoryForm(directory_data(make_configuration(), hostname=hostname))
    assert form.is_valid(), form.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"port": "0"}, "port", "from 1 to 65535"),
        ({"port": "65536"}, "port", "from 1 to 65535"),
        ({"port": "99999999999999999999999"}, "port", "from 1 to 65535"),
        ({"hostname": "ldap server"}, "hostname", "host name"),
        ({"hostname": "-bad-.example.com"}, "hostname", "host name"),
        ({"hostname": "300.1.1.1"}, "hostname", "host name"),
        ({"hostname": "ldap_example.com"}, "hostname", "host name"),
        ({"alternative_ips": "10.0.0.2\nldap.example.com"}, "alternative_ips", "is not an IP address"),
        ({"ca_certificate": "hello"}, "ca_certificate", "not a PEM X.509 certificate"),
        (
            {"ca_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
            "ca_certificate",
            "not a PEM X.509 certificate",
        ),
        ({"user_match": "people"}, "user_match", "not a valid search base"),
        (
            {"directory_type": DirectoryType.ACTIVE_DIRECTORY, "use_ssl": None},
            "use_ssl",
            "Active Directory requires LDAPS",
        ),
        ({"use_ssl": None}, "use_ssl", "never sends a password over plain LDAP"),
        ({"start_tls": "on"}, "start_tls", "not both"),
    ],
)
def test_a_directory_form_rejects_bad_input(overrides, field, message):
    assert_rejected(DirectoryForm(directory_data(make_configuration(), **overrides)), field, message)


@pytest.mark.django_db
def test_a_directory_rejects_an_admin_credential_from_another_configuration():
    configuration = make_configuration()
    stranger = make_user(make_configuration())
    form = DirectoryForm(directory_data(configuration, administrative_credential=str(stranger.pk)))
    assert_rejected(form, "administrative_credential", "must belong to the same configuration")


# User ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_good_user_form_saves_and_encrypts_the_password():
    directory = make_directory()
    form = UserForm(user_data(directory.configuration, directory, password="S3cret!pass"))
    assert form.is_valid(), form.errors
    pam_user = form.save()
    assert pam_user.get_password() == "S3cret!pass"
    assert "S3cret" not in pam_user.password_encrypted


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"distinguished_name": "svc-backup"}, "distinguished_name", "not a valid distinguished name"),
        ({"distinguished_name": "cn=a,,dc=b"}, "distinguished_name", "not a valid distinguished name"),
        # Without a DN the directory is asked for it (it has no admin credential here, so it cannot say).
        ({"distinguished_name": ""}, "distinguished_name", "distinguished name"),
        ({"password_complexity": "10,3,3,3,3"}, "password_complexity", "more than the length"),
        ({"password_complexity": "20,1,1,1,1,"}, "password_complexity", "none are allowed"),
        ({"password_complexity": "20,1,1,1,0,abc"}, "password_complexity", "printable ASCII punctuation"),
        ({"schedule_tz": "Europe/Nowhere"}, "schedule_tz", "not an IANA time zone"),
        ({"schedule_type": "CRON", "schedule_cron": "0 2 * *"}, "schedule_cron", "5 fields"),
        ({"schedule_type": "WEEKLY", "schedule_weekday": ""}, "schedule_type", "pick the weekday"),
        ({"schedule_time": "25:00"}, "schedule_time", "valid time"),
        ({"resource": "", "rotation_enabled": "on"}, "resource", "Pick the directory"),
    ],
)
def test_a_user_form_rejects_bad_input(overrides, field, message):
    directory = make_directory()
    assert_rejected(UserForm(user_data(directory.configuration, directory, **overrides)), field, message)


@pytest.mark.django_db
def test_a_user_rejects_a_directory_from_another_configuration():
    directory = make_directory()
    form = UserForm(user_data(make_configuration(), directory))
    assert_rejected(form, "resource", "must belong to the same configuration")


@pytest.mark.django_db
def test_user_titles_are_unique():
    directory = make_directory()
    make_user(directory.configuration, title="svc-backup")
    assert_rejected(UserForm(user_data(directory.configuration, directory)), "title", "already exists")


@pytest.mark.django_db
def test_the_form_page_shows_the_validation_message(client, alice):
    client.force_login(alice)
    configuration = make_configuration()
    response = client.post(
        reverse("records:directory-create"), directory_data(configuration, port="70000", hostname="a b")
    )
    assert response.status_code == 200
    assert b"The port must be a number from 1 to 65535." in response.content
    assert b"Enter a host name such as" in response.content
    assert not PamDirectory.objects.exists()


# Write-only password ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_blank_password_keeps_the_stored_one(client, alice):
    client.force_login(alice)
    directory = make_directory()
    pam_user = make_user(resource=directory, password="Old-Secret-1", distinguished_name="cn=x,dc=y")
    data = user_data(directory.configuration, directory, title=pam_user.title, password="")
    response = client.post(reverse("records:user-edit", args=[pam_user.pk]), data)
    assert response.status_code == 302
    pam_user.refresh_from_db()
    assert pam_user.get_password() == "Old-Secret-1"


@pytest.mark.django_db
def test_a_new_password_replaces_the_stored_one(client, alice):
    client.force_login(alice)
    directory = make_directory()
    pam_user = make_user(resource=directory, password="Old-Secret-1", distinguished_name="cn=x,dc=y")
    data = user_data(directory.configuration, directory, title=pam_user.title, password="New-Secret-2")
    client.post(reverse("records:user-edit", args=[pam_user.pk]), data)
    pam_user.refresh_from_db()
    assert pam_user.get_password() == "New-Secret-2"


@pytest.mark.django_db
def test_the_password_never_appears_in_the_edit_form(client, alice):
    client.force_login(alice)
    pam_user = make_user(password="Never-Shown-7!")
    url = reverse("records:user-edit", args=[pam_user.pk])
    page = client.get(url).content.decode()
    assert "Never-Shown-7!" not in page
    assert pam_user.password_encrypted not in page
    assert 'type="password"' in page
    # Not even after a validation round trip with a new password typed in.
    data = user_data(pam_user.configuration, title=pam_user.title, password="Typed-Again-8", schedule_tz="x")
    page = client.post(url, data).content.decode()
    assert "not an IANA time zone" in page
    assert "Typed-Again-8" not in page
    assert (
        "Never-Shown-7!"
        not in client.get(reverse("records:user-detail", args=[pam_user.pk])).content.decode()
    )


# Property: arbitrary input never breaks the server ---------------------------------------------

anything = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(["", "0", "-1", "65536", "on", "CRON", "DAILY", "WEEKLY", "UTC", "02:00", "1,1,1,1,1"]),
)
flag = st.sampled_from([None, "on", "", "off"])


def _arbitrary(valid: dict, flags: tuple[str, ...]):
    """Return a strategy of POST data: every field either its valid value or anything at all."""
    fields = {}
    for key, value in valid.items():
        if key in flags:
            continue
        fields[key] = st.one_of(st.just(value), anything)
    for key in flags:
        fields[key] = flag
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not None})


FLAGS = {
    "configuration": ("rotation_enabled", "manual_rotation_resets_schedule"),
    "directory": ("use_ssl", "start_tls", "verify_certificate"),
    "user": ("managed", "rotation_enabled"),
}
PROPERTY_SETTINGS = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def records_for_property(client, alice):
    client.force_login(alice)
    directory = make_directory()
    pam_user = make_user(resource=directory, distinguished_name="cn=a,dc=b")
    return {
        "configuration": (configuration_data(), directory.configuration),
        "directory": (directory_data(directory.configuration), directory),
        "user": (user_data(directory.configuration, directory), pam_user),
    }


def _post_everywhere(client, record_type, existing, data):
    for url in (
        reverse(f"records:{record_type}-create"),
        reverse(f"records:{record_type}-edit", args=[existing.pk]),
    ):
        response = client.post(url, data)
        assert response.status_code in (200, 302), (url, data, response.status_code)


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(data=st.data())
def test_arbitrary_configuration_input_never_breaks_the_server(client, records_for_property, data):
    valid, existing = records_for_property["configuration"]
    _post_everywhere(client, "configuration", existing, data.draw(_arbitrary(valid, FLAGS["configuration"])))


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(data=st.data())
def test_arbitrary_directory_input_never_breaks_the_server(client, records_for_property, data):
    valid, existing = records_for_property["directory"]
    _post_everywhere(client, "directory", existing, data.draw(_arbitrary(valid, FLAGS["directory"])))


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(data=st.data())
def test_arbitrary_user_input_never_breaks_the_server(client, records_for_property, data):
    valid, existing = records_for_property["user"]
    _post_everywhere(client, "user", existing, data.draw(_arbitrary(valid, FLAGS["user"])))

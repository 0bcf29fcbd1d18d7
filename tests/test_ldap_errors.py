"""The catalogue of LDAP results → error class and plain-language message, without a server."""

from __future__ import annotations

import pickle

import pytest

from rotation.ldap_errors import ADMIN, SELF, DirectoryError, DirectorySpec, result_error

AD = DirectorySpec(host="dc.example.test", directory_type="ad")
SLAPD = DirectorySpec(host="ldap.example.test", directory_type="openldap")


@pytest.mark.parametrize(
    "spec, result, who, diagnostic, kind, words",
    [
        (
            AD,
            {"result": 49},
            ADMIN,
            "80090308: LdapErr: DSID-0C09042A, data 52e, v4563",
            "configuration",
            "password is wrong",
        ),
        (AD, {"result": 49}, SELF, "data 775", "configuration", "locked out"),
        (AD, {"result": 49}, SELF, "data 533", "configuration", "disabled"),
        (
            AD,
            {"result": 19},
            ADMIN,
            "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!",
            "rejected",
            "minimum password length of 7",
        ),
        (AD, {"result": 50}, ADMIN, "", "configuration", "Reset Password right"),
        (SLAPD, {"result": 50}, ADMIN, "", "configuration", "write access to userPassword"),
        (SLAPD, {"result": 19}, ADMIN, "Password fails quality checking policy", "rejected", "quality"),
        (
            SLAPD,
            {"result": 53},
            SELF,
            "unwilling to verify old password",
            "configuration",
            "current password",
        ),
        (SLAPD, {"result": 32}, ADMIN, "", "configuration", "distinguished name was not found"),
        (AD, {"result": 8}, ADMIN, "", "configuration", "LDAPS port"),
        (SLAPD, {"result": 51}, ADMIN, "", "transient", "busy"),
        (SLAPD, {"result": 80, "description": "other"}, ADMIN, "", "configuration", "(other)"),
    ],
)
def test_each_result_gets_its_class_and_a_message_that_names_the_fix(
    spec, result, who, diagnostic, kind, words
):
    got_kind, message = result_error(spec, result, who, diagnostic)
    assert got_kind == kind
    assert words in message


def test_an_error_says_its_code_once_and_survives_pickling_for_task_results():
    error = DirectoryError(DirectoryError.CONFIGURATION, "the account's DN was not found", code=32)
    assert str(error) == "the account's DN was not found (LDAP 32)"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.kind, copy.message, copy.code) == (error.kind, error.message, error.code)

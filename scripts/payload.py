"""The line a post-rotation script reads on stdin: Keeper's contract (KEEPER-FORMAT.md §6).

One line of base64 of a JSON object with ``providerRecordUid``, ``resourceRecordUid``,
``userRecordUid``, ``newPassword``, ``oldPassword``, ``user`` (the login) and ``records``: base64
of a JSON array of the configuration, the directory, each additional credential and the user,
each ``{"uid", "title", <Keeper field label>: value, ...}``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from django.views.decorators.debug import sensitive_variables

from records.models import PamConfiguration, PamDirectory, PamUser


@dataclass
class Payload:
    """The stdin line for one script and every secret it holds (to mask them in the output)."""

    line: str
    secrets: list[str] = field(default_factory=list)


def configuration_fields(configuration: PamConfiguration) -> dict:
    """Return a configuration as Keeper's flat record dict."""
    return {
        "uid": configuration.uid,
        "title": configuration.title,
        "type": "pamNetworkConfiguration",
        "environment": configuration.environment,
        "gatewayName": configuration.gateway,
        "networkId": configuration.network_id,
        "networkCIDR": configuration.network_cidr,
    }


def directory_fields(directory: PamDirectory) -> dict:
    """Return a directory as Keeper's flat record dict (pamHostname's hostName and port, useSSL...)."""
    return {
        "uid": directory.uid,
        "title": directory.title,
        "type": "pamDirectory",
        "hostName": directory.hostname,
        "port": str(directory.port),
        "useSSL": directory.use_ssl,
        "domainName": directory.domain_name,
        "directoryType": directory.directory_type,
        "userMatch": directory.user_match,
    }


@sensitive_variables()
def user_fields(user: PamUser, password: str) -> dict:
    """Return a PAM user as Keeper's flat record dict, with the password given."""
    return {
        "uid": user.uid,
        "title": user.title,
        "type": "pamUser",
        "login": user.login,
        "password": password,
        "distinguishedName": user.distinguished_name,
    }


def _b64(data) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


@sensitive_variables()
def build(user: PamUser, new_password: str, old_password: str, credentials: list[PamUser]) -> Payload:
    """Return the stdin line for a script run after ``user`` changed from old to new password."""
    records = [configuration_fields(user.configuration)]
    if user.resource is not None:
        records.append(directory_fields(user.resource))
    # login:password too, so that an HTTP Basic header (its base64) is masked whole.
    secrets = [new_password, old_password, f"{user.login}:{new_password}", f"{user.login}:{old_password}"]
    for credential in credentials:
        password = credential.get_password()
        secrets += [password, f"{credential.login}:{password}"]
        records.append(user_fields(credential, password))
    records.append(user_fields(user, new_password))
    encoded_records = _b64(records)
    params = {
        "providerRecordUid": user.configuration.uid,
        "resourceRecordUid": user.resource.uid if user.resource is not None else "",
        "userRecordUid": user.uid,
        "newPassword": new_password,
        "oldPassword": old_password,
        "user": user.login,
        "records": encoded_records,
    }
    line = _b64(params)
    return Payload(
        line=line, secrets=[s for s in {*secrets, line, encoded_records} if s and not s.endswith(":")]
    )

"""Import a parsed Keeper project file: plan the records in memory, validate them, then write them at once.

Import follows Keeper's ``extend`` mode: records are matched by title and existing ones are
skipped, so importing a file twice changes nothing. Any error rejects the whole file.

1. **Plan**: build every new record unsaved and run the model's ``full_clean()`` on it (the same
   rules as every other entry point), with titles and UIDs checked against sets read once. The
   plan only reads the database, so a preview (a dry run) takes no write lock.
2. **Write** (not for a dry run, and only when nothing was rejected): in one transaction, check
   that no title or UID was taken since, save configurations, directories, users, then link the
   administrative credentials, and announce each record to the audit log.

The report is records/import_report.py; the browser's upload waits between preview and confirm
in records/import_stash.py.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.actors import SYSTEM_ACTOR, Actor
from records import changes, keeper, keeper_schedules, schedules
from records.import_report import ImportRejected, ImportReport, Item
from records.keeper import KeeperError
from records.models import DirectoryType, Environment, PamConfiguration, PamDirectory, PamUser, RotationType

# The plan links records that are not saved yet: these foreign keys are checked by the models'
# clean() (same configuration) instead of clean_fields(), which would look them up by id.
PLAN_EXCLUDE = {
    PamConfiguration: [],
    PamDirectory: ["configuration", "administrative_credential"],
    PamUser: ["configuration", "resource"],
}
# Keys other apps plan on new records (scripts/ registers "scripts"; records never imports it):
# key -> handler(record, value, where, find_user, warn), called once a project's records are planned.
# It raises KeeperError to reject the record, or returns a callable that writes what the key
# describes: called after the records are saved, before the import's transaction commits.
EXTRA_KEY_HANDLERS: dict = {}


def _title_of(entry) -> str:
    if not isinstance(entry, dict):
        return ""
    value = entry.get("title") or entry.get("login") or ""
    return value if isinstance(value, str) else ""


def _messages(exc: ValidationError) -> list[str]:
    """Return a ValidationError as one line per field, naming the field."""
    if hasattr(exc, "error_dict"):
        return [f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items()]
    return [" ".join(exc.messages)]


class _Plan:
    """One file's records, built and validated in memory; ``write`` saves them."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.configurations: list[PamConfiguration] = []
        self.directories: list[PamDirectory] = []
        self.users: list[PamUser] = []
        self.links: list[tuple[PamDirectory, PamUser]] = []
        self.seen: dict[tuple[str, str], str] = {}
        self.file_uids: dict[str, str] = {}
        self.duplicates = 0
        self.unsupported: set[str] = set()
        self.extra_writes: list = []
        self.file_passwords: set[str] = (
            set()
        )  # records.repoint: a stored credential goes where the file proves it may
        self.planned_directories: dict[str, PamDirectory] = {}
        self.candidates: dict[int, list[PamUser]] = {}
        # Read once: a 10,000-user file must not ask the database 10,000 questions.
        self.existing_configurations = {c.title: c for c in PamConfiguration.objects.all()}
        self.existing_directories = {d.title: d for d in PamDirectory.objects.select_related("configuration")}
        self.existing_users = set(PamUser.objects.values_list("title", flat=True))
        self.taken_uids = {
            uid
            for model in (PamConfiguration, PamDirectory, PamUser)
            for uid in model.objects.values_list("uid", flat=True)
        }

    # Bookkeeping.

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)

    def reject(self, kind: str, title: str, reason: str) -> None:
        self.report.rejected.append(Item(kind, title, reason))

    def skip(self, kind: str, title: str, reason: str) -> None:
        self.report.skipped.append(Item(kind, title, reason))

    def once(self, kind: str, title: str, where: str) -> bool:
        """Return False (and reject) when a title appears twice in the file."""
        key = (kind, title)
        if key in self.seen:
            self.reject(
                kind, title, f"{where}: the title appears twice in the file (first at {self.seen[key]})"
            )
            return False
        self.seen[key] = where
        return True

    def claim_uid(self, instance, given: str, kind: str, where: str) -> None:
        """Keep a given, unused UID on a new record; a UID already taken gets a fresh one, with a warning."""
        if not given:
            return
        if given in self.taken_uids:
            self.warn(
                f"{where}: uid {given!r} is used by another record; {kind} {instance.title!r} gets a new one"
            )
            return
        instance.uid = given
        self.taken_uids.add(given)

    def add(self, instance, kind: str, bucket: list) -> bool:
        """Validate a new record as every entry point does; reject it, one reason per bad field, when invalid."""
        try:
            changes.validate(instance, exclude=PLAN_EXCLUDE[type(instance)], validate_unique=False)
        except ValidationError as exc:
            for message in _messages(exc):
                self.reject(kind, instance.title, message)
            return False
        bucket.append(instance)
        self.report.created.append(Item(kind, instance.title))
        return True

    def credential(self, name: str, configuration: PamConfiguration, planned: list[PamUser]):
        """Return the one user a title (first) or login names, among the planned and stored users."""
        stored = PamUser.objects.filter(configuration=configuration) if configuration.pk else None
        for attribute in ("title", "login"):
            matches = [user for user in planned if getattr(user, attribute) == name]
            if stored is not None:
                matches += list(stored.filter(**{attribute: name}))
            if matches:
                return matches
        return []

    def link(self, directory: PamDirectory, name: str, planned: list[PamUser], key: str) -> None:
        """Plan a new directory's administrative credential, named by title or login."""
        matches = self.credential(name, directory.configuration, planned)
        if not matches:
            self.reject("directory", directory.title, f"{key} {name!r} names no user")
            return
        if len(matches) > 1:
            titles = ", ".join(repr(user.title) for user in matches)
            self.reject("directory", directory.title, f"{key} {name!r} matches {titles}")
            return
        stored = matches[0].pk is not None and matches[0].has_password
        if stored and matches[0].get_password() not in self.file_passwords:
            # A new directory would send a stored account's password to its address: the file must carry it.
            self.reject(
                "directory",
                directory.title,
                f"{key} {name!r} is a stored account: the file must carry its password to send it to this directory",
            )
            return
        directory.administrative_credential = matches[0]
        try:
            directory.full_clean(exclude=PLAN_EXCLUDE[PamDirectory], validate_unique=False)
        except ValidationError as exc:
            for message in _messages(exc):
                self.reject("directory", directory.title, message)
        else:
            self.links.append((directory, matches[0]))
        # Saved without it first: the user is saved after the directory.
        directory.administrative_credential = None

    def plan_extras(self, records: list, configuration: PamConfiguration, planned: list[PamUser]) -> None:
        """Hand each new record's extra keys to their EXTRA_KEY_HANDLERS; keep what they will write."""
        kinds = {PamConfiguration: "configuration", PamDirectory: "directory", PamUser: "user"}
        for record, entry, where in records:
            for key, handler in EXTRA_KEY_HANDLERS.items():
                if entry.get(key) is None:
                    continue
                try:
                    self.extra_writes.append(
                        handler(
                            record,
                            entry[key],
                            f"{where}.{key}",
                            lambda name: self.credential(name, configuration, planned),
                            self.warn,
                        )
                    )
                except KeeperError as exc:
                    self.reject(kinds[type(record)], record.title, str(exc))

    # The file's pieces, outermost first.

    def project(self, project: dict, where: str) -> None:
        for warning in keeper.unknown_keys(project, keeper.TOP_KEYS, where):
            self.warn(warning)
        commander = keeper.is_commander_export(project)
        if commander:
            self.warn(
                f"{where}: this is Commander's pam project export, which omits hosts, ports, DNs, passwords "
                "and rotation settings: users are imported once per uid without a DN, and directories "
                "without a host are skipped"
            )
        for key in ("shared_folder_users", "shared_folder_resources"):
            if key in project:
                self.warn(f'{where}: "{key}" has no meaning in pamrotate; ignored')
        name = keeper.text(project.get("project"), f"{where}.project")
        entry = keeper.obj(project.get("pam_configuration"), f"{where}.pam_configuration")
        configuration = self.configuration(entry, name)
        if configuration is None:
            return
        planned = self.candidates.setdefault(id(configuration), [])
        extras = [(configuration, entry, "pam_configuration")] if configuration.pk is None else []
        domain, domain_admin = None, ""
        if configuration.environment == Environment.DOMAIN:
            domain, domain_admin = self.domain(entry, configuration) or (None, "")
        data = keeper.obj(project.get("pam_data"), f"{where}.pam_data")
        for warning in keeper.unknown_keys(data, keeper.DATA_KEYS, f"{where}.pam_data"):
            self.warn(warning)
        profiles = self.profiles(data.get("rotation_profiles"), f"{where}.pam_data.rotation_profiles")
        # Directories first (without their credential), then users, then the credential links.
        pending, users = [], []
        for index, resource in enumerate(keeper.items(data.get("resources"), f"{where}.pam_data.resources")):
            spot = f"{where}.pam_data.resources[{index}]"
            try:
                result = self.directory(keeper.obj(resource, spot), spot, configuration, commander)
            except KeeperError as exc:
                self.reject("directory", _title_of(resource), str(exc))
                continue
            if result is None:
                continue
            directory, credential, resource = result
            if directory is not None and directory.pk is None:
                extras.append((directory, resource, spot))
            if credential:
                pending.append((directory, credential))
            for number, nested in enumerate(keeper.items(resource.get("users"), f"{spot}.users")):
                users.append((nested, f"{spot}.users[{number}]", directory, False))
        for index, loose in enumerate(keeper.items(data.get("users"), f"{where}.pam_data.users")):
            users.append((loose, f"{where}.pam_data.users[{index}]", None, True))
        top_level = []
        for user_entry, spot, directory, is_top in users:
            try:
                user = self.user(
                    keeper.obj(user_entry, spot),
                    spot,
                    configuration,
                    directory,
                    profiles,
                    domain if is_top else None,
                )
            except KeeperError as exc:
                self.reject("user", _title_of(user_entry), str(exc))
                continue
            if user is not None:
                planned.append(user)
                extras.append((user, user_entry, spot))
                if is_top:
                    top_level.append(user)
        for directory, credential in pending:
            self.link(directory, credential, planned, "administrative_credentials")
        if domain is not None and domain_admin:
            # Keeper resolves the domain admin among the top-level users (the configuration's own).
            self.link(domain, domain_admin, top_level, "dom_administrative_credential")
        self.plan_extras(extras, configuration, planned)
        if self.duplicates:
            self.warn(
                f"{where}: {self.duplicates} user entr{'y' if self.duplicates == 1 else 'ies'} repeated "
                "a uid listed before (as Commander's export lists each user twice); each uid was imported once"
            )
            self.duplicates = 0

    def configuration(self, entry: dict, project_name: str) -> PamConfiguration | None:
        where = "pam_configuration"
        environment = (
            keeper.text(entry.get("environment"), f"{where}.environment").lower() or Environment.LOCAL
        )
        known = keeper.CONFIGURATION_KEYS | (
            keeper.DOMAIN_KEYS if environment == Environment.DOMAIN else set()
        )
        for warning in keeper.unknown_keys(entry, known, where):
            self.warn(warning)
        # Keeper names an untitled configuration after the project.
        title = keeper.text(entry.get("title"), f"{where}.title") or (
            f"{project_name} Configuration" if project_name else ""
        )
        if not title:
            self.reject("configuration", "", f"{where}: a title is required (or a project name)")
            return None
        if not self.once("configuration", title, where):
            return None
        existing = self.existing_configurations.get(title)
        if existing is not None:
            self.skip("configuration", title, "a configuration with this title exists")
            return existing
        if environment not in Environment.values:
            self.reject(
                "configuration",
                title,
                f'environment {environment!r} is not supported; use "local" or "domain"',
            )
            return None
        cidr_key = "dom_network_cidr" if environment == Environment.DOMAIN else "network_cidr"
        configuration = PamConfiguration(
            title=title,
            environment=environment,
            gateway=keeper.text(entry.get("gateway_name"), f"{where}.gateway_name") or "default",
            application_folder=keeper.text(entry.get("application_folder"), f"{where}.application_folder"),
            network_id=keeper.text(entry.get("network_id"), f"{where}.network_id"),
            network_cidr=keeper.text(entry.get(cidr_key) or entry.get("network_cidr"), f"{where}.{cidr_key}"),
            port_mapping=keeper.lines(entry.get("port_mapping"), f"{where}.port_mapping"),
            rotation_enabled=keeper.switch(entry.get("rotation"), f"{where}.rotation", default=True),
            manual_rotation_resets_schedule=keeper.switch(
                entry.get("manual_rotation_resets_schedule"),
                f"{where}.manual_rotation_resets_schedule",
                default=False,
            ),
        )
        complexity = keeper.text(
            entry.get("default_password_complexity"), f"{where}.default_password_complexity"
        )
        if complexity:
            configuration.default_password_complexity = complexity
        if entry.get("default_rotation_schedule") is not None:
            for name, value in keeper_schedules.schedule_fields(
                entry["default_rotation_schedule"], where
            ).items():
                setattr(configuration, name, value)
        self.claim_uid(configuration, keeper.uid(entry.get("uid"), f"{where}.uid"), "configuration", where)
        # Planned even when invalid, so the rest of the file is checked too (nothing is written then).
        self.add(configuration, "configuration", self.configurations)
        return configuration

    def domain(self, entry: dict, configuration: PamConfiguration):
        """Plan a domain configuration's Domain Controller; return (directory, admin name) or None."""
        where = "pam_configuration"
        domain_id = keeper.text(entry.get("dom_domain_id"), f"{where}.dom_domain_id")
        host = keeper.text(entry.get("dom_hostname"), f"{where}.dom_hostname")
        if not host and not domain_id:
            # Commander's export (and a domain configuration exported without one) carries no dom_* keys.
            self.warn(f"{where}: no dom_* keys: the configuration is imported without its Domain Controller")
            return None
        if not domain_id:
            self.reject("directory", "", f"{where}: a domain configuration needs dom_domain_id")
            return None
        if entry.get("dom_scan_dc_cidr") is not None:
            self.warn(
                f"{where}: dom_scan_dc_cidr (discovery of Domain Controllers) is not used by pamrotate; ignored"
            )
        title = f"PAM Directory - {domain_id}"
        if not self.once("directory", title, where):
            return None
        existing = self.existing_directories.get(title)
        if existing is not None:
            self.skip("directory", title, "a directory with this title exists")
            return existing, ""
        port = keeper.integer(entry.get("dom_port"), where, "dom_port")
        directory = PamDirectory(
            title=title,
            configuration=configuration,
            hostname=host,
            port=636 if port is None else port,
            use_ssl=keeper.switch(entry.get("dom_use_ssl"), f"{where}.dom_use_ssl", default=True),
            domain_name=domain_id,
            directory_type=DirectoryType.ACTIVE_DIRECTORY,
            user_match=keeper.text(entry.get("dom_user_match"), f"{where}.dom_user_match"),
        )
        self.planned_directories[title] = directory
        self.add(directory, "directory", self.directories)
        admin = keeper.text(
            entry.get("dom_administrative_credential"), f"{where}.dom_administrative_credential"
        )
        if not admin:
            self.warn(f"{where}: no dom_administrative_credential; set {title!r}'s administrative credential")
        return directory, admin

    def profiles(self, value, where: str) -> dict[str, dict]:
        """Return the rotation profiles by name (an object of name → settings, or a list with names)."""
        if value is None:
            return {}
        if isinstance(value, dict):
            named = {name: settings for name, settings in value.items() if not name.startswith("_")}
        elif isinstance(value, list):
            named = {}
            for index, settings in enumerate(value):
                name = keeper.text(
                    keeper.obj(settings, f"{where}[{index}]").get("name"), f"{where}[{index}].name"
                )
                if not name:
                    raise KeeperError(f"{where}[{index}]: a rotation profile needs a name")
                named[name] = settings
        else:
            raise KeeperError(f"{where}: expected an object of profiles by name")
        for name, settings in named.items():
            if not isinstance(settings, dict):
                raise KeeperError(f"{where}.{name}: a rotation profile must be a JSON object")
            for warning in keeper.unknown_keys(settings, keeper.PROFILE_KEYS, f"{where}.{name}"):
                self.warn(warning)
        return named

    def directory(self, entry: dict, where: str, configuration: PamConfiguration, commander: bool):
        """Plan (or find) a directory; return (directory or None, credential name, entry), or None to skip its users."""
        title = keeper.text(entry.get("title"), f"{where}.title")
        kind = keeper.text(entry.get("type"), f"{where}.type") or "pamDirectory"
        if kind != "pamDirectory":
            self.skip("resource", title, f"{kind} resources are not supported")
            self.warn(
                f"{where}: {kind} {title!r} skipped with its users: pamrotate rotates directory accounts only"
            )
            self.unsupported.add(title)
            return None
        for warning in keeper.unknown_keys(entry, keeper.DIRECTORY_KEYS, where):
            self.warn(warning)
        domain_name = keeper.text(entry.get("domain_name"), f"{where}.domain_name")
        title = title or (f"PAM Directory - {domain_name}" if domain_name else "")
        if not title:
            self.reject("directory", "", f"{where}: a title (or a domain_name) is required")
            return None
        if not self.once("directory", title, where):
            return None
        existing = self.existing_directories.get(title)
        if existing is not None:
            self.skip("directory", title, "a directory with this title exists")
            return existing, "", entry
        host = keeper.text(entry.get("host"), f"{where}.host")
        if commander and not host:
            self.skip("directory", title, "Commander's export has no host for it; add it by hand")
            return None, "", entry
        directory_type = keeper.text(entry.get("directory_type"), f"{where}.directory_type").lower()
        directory_type = {"ldap": DirectoryType.OPENLDAP}.get(directory_type, directory_type)
        if directory_type not in DirectoryType.values:
            self.reject(
                "directory",
                title,
                f"unknown directory_type {entry.get('directory_type')!r}; use active_directory or openldap",
            )
            return None
        port = keeper.integer(entry.get("port"), where, "port")
        settings = keeper.obj(entry.get("pam_settings"), f"{where}.pam_settings")
        connection = keeper.obj(settings.get("connection"), f"{where}.pam_settings.connection")
        if not commander:
            for key in settings:
                if key != "connection" and not key.startswith("_"):
                    self.warn(f'{where}.pam_settings: key "{key}" is not used by pamrotate; ignored')
            for warning in keeper.unknown_keys(
                connection, keeper.CONNECTION_KEYS, f"{where}.pam_settings.connection"
            ):
                self.warn(warning)
        credential = keeper.text(
            connection.get("administrative_credentials"), f"{where}.administrative_credentials"
        )
        verify = keeper.switch(entry.get("verify_certificate"), f"{where}.verify_certificate", default=True)
        if not verify:
            self.warn(f"{where}: certificate verification is turned OFF for {title!r}")
        directory = PamDirectory(
            title=title,
            configuration=configuration,
            hostname=host,
            port=636 if port is None else port,
            use_ssl=keeper.switch(entry.get("use_ssl"), f"{where}.use_ssl", default=True),
            start_tls=keeper.switch(entry.get("start_tls"), f"{where}.start_tls", default=False),
            ca_certificate=keeper.pem(entry.get("ca_certificate"), f"{where}.ca_certificate"),
            verify_certificate=verify,
            alternative_ips=keeper.lines(entry.get("alternative_ips"), f"{where}.alternative_ips"),
            domain_name=domain_name,
            directory_type=directory_type,
            user_match=keeper.text(entry.get("user_match"), f"{where}.user_match"),
        )
        self.claim_uid(directory, keeper.uid(entry.get("uid"), f"{where}.uid"), "directory", where)
        self.planned_directories[title] = directory
        self.add(directory, "directory", self.directories)
        return directory, credential, entry

    def resolve_directory(self, title: str) -> PamDirectory | None:
        return self.planned_directories.get(title) or self.existing_directories.get(title)

    def rotation_settings(self, entry: dict, where: str, profiles: dict) -> dict:
        """Return a user's rotation settings with its profile merged under them.

        ``rotation_settings`` may be an object or (Keeper) a string naming a profile; a
        ``profile`` key, or a ``rotation`` that is not a Keeper rotation type, names one too.
        """
        raw = entry.get("rotation_settings")
        if isinstance(raw, str):
            if raw not in profiles:
                raise KeeperError(f"rotation profile {raw!r} is not in this file")
            raw = profiles[raw]
        settings = dict(keeper.obj(raw, f"{where}.rotation_settings"))
        for warning in keeper.unknown_keys(settings, keeper.ROTATION_KEYS, f"{where}.rotation_settings"):
            self.warn(warning)
        profile = keeper.text(settings.get("profile"), f"{where}.rotation_settings.profile")
        rotation = keeper.text(settings.get("rotation"), f"{where}.rotation_settings.rotation")
        if rotation and rotation.lower() not in keeper.KEEPER_ROTATION_TYPES:
            if rotation not in profiles:
                raise KeeperError(f"rotation {rotation!r} names no rotation profile in this file")
            profile = profile or rotation
            del settings["rotation"]
        if profile:
            if profile not in profiles:
                raise KeeperError(f"rotation profile {profile!r} is not in this file")
            settings = {**{k: v for k, v in profiles[profile].items() if k != "name"}, **settings}
        return settings

    def user(self, entry: dict, where: str, configuration, directory, profiles: dict, domain):
        """Plan a user; return it (valid or not, for credential links) or None when skipped or rejected."""
        kind = keeper.text(entry.get("type"), f"{where}.type") or "pamUser"
        title = keeper.text(entry.get("title"), f"{where}.title")
        login = keeper.text(entry.get("login"), f"{where}.login")
        if kind == "login":
            self.skip("user", title or login, "login records are not rotated by pamrotate")
            self.warn(
                f"{where}: login record {title or login!r} skipped: pamrotate rotates pamUser records only"
            )
            return None
        if kind != "pamUser":
            self.reject("user", title, f"{where}: type {kind!r} is not supported; use pamUser")
            return None
        for warning in keeper.unknown_keys(entry, keeper.USER_KEYS, where):
            self.warn(warning)
        title = title or (f"PAM User - {login}" if login else "")
        if not title:
            self.reject("user", "", f"{where}: a title (or a login) is required")
            return None
        given_uid = keeper.uid(entry.get("uid"), f"{where}.uid")
        if given_uid in self.file_uids:
            if self.file_uids[given_uid] == title:
                self.duplicates += 1
                return None
            self.reject(
                "user", title, f"{where}: uid {given_uid!r} is also used by {self.file_uids[given_uid]!r}"
            )
            return None
        if given_uid:
            self.file_uids[given_uid] = title
        if not self.once("user", title, where):
            return None
        settings = self.rotation_settings(entry, where, profiles)
        rotation = keeper.text(settings.get("rotation"), f"{where}.rotation_settings.rotation").lower()
        if rotation == "iam_user":
            self.reject(
                "user",
                title,
                "rotation iam_user (a cloud IAM user) is not supported; use general or scripts_only",
            )
            return None
        rotation_type = RotationType.SCRIPTS_ONLY if rotation == "scripts_only" else RotationType.GENERAL
        resource_title = keeper.text(settings.get("resource"), f"{where}.rotation_settings.resource")
        if resource_title in self.unsupported and directory is None:
            self.skip("user", title, f"its resource {resource_title!r} is not supported")
            return None
        if resource_title and directory is not None and resource_title != directory.title:
            self.reject(
                "user", title, f"nested under {directory.title!r} but its resource says {resource_title!r}"
            )
            return None
        if resource_title and directory is None:
            directory = self.resolve_directory(resource_title)
            if directory is None:
                self.reject("user", title, f"its resource {resource_title!r} does not exist")
                return None
        if directory is None and domain is not None and rotation_type == RotationType.GENERAL:
            directory = domain  # a domain configuration's own users rotate through its Domain Controller
        if title in self.existing_users:
            self.skip("user", title, "a user with this title exists")
            return None
        password = entry.get("password")
        if password is not None and not isinstance(password, str):
            self.reject("user", title, "password must be text")
            return None
        user = PamUser(
            title=title,
            configuration=configuration,
            login=login,
            distinguished_name=keeper.text(entry.get("distinguished_name"), f"{where}.distinguished_name"),
            managed=keeper.switch(entry.get("managed"), f"{where}.managed", default=False),
            resource=directory,
            rotation_type=rotation_type,
            rotation_enabled=keeper.switch(
                settings.get("enabled"), f"{where}.rotation_settings.enabled", default=directory is not None
            ),
            password_complexity=keeper.text(
                settings.get("password_complexity"), f"{where}.password_complexity"
            ),
            schedule_type=schedules.USE_DEFAULT,
        )
        if settings.get("schedule") is not None:
            for name, value in keeper_schedules.schedule_fields(settings["schedule"], where).items():
                setattr(user, name, value)
        if (
            user.rotation_enabled
            and directory is not None
            and directory.pk is None
            and not user.distinguished_name
        ):
            # Keeper needs no DN (its generator writes none). A stored directory is asked for it (the
            # model's clean looks it up); one this file creates cannot be asked yet, so rotation waits.
            user.rotation_enabled = False
            self.warn(
                f"{where}: {title!r} has no distinguished_name, so its rotation is off until one is set"
            )
        user.set_password(password or "")
        self.claim_uid(user, given_uid, "user", where)
        self.add(user, "user", self.users)
        return user

    # Writing.

    def write(self, *, actor: Actor) -> None:
        """Save the planned records in one transaction and announce them; raise ImportRejected on a clash."""
        new = [*self.configurations, *self.directories, *self.users]
        try:
            with transaction.atomic():
                self.check_still_free()
                for instance in new:
                    instance.save()
                for user in self.users:
                    user.next_rotation_at = user.compute_next_rotation()
                PamUser.objects.bulk_update(self.users, ["next_rotation_at"], batch_size=500)
                for directory, user in self.links:
                    directory.administrative_credential = user
                    directory.save(update_fields=["administrative_credential", "updated_at"])
                for write_extra in self.extra_writes:
                    write_extra()
                for instance in new:
                    changes.announce(instance, "created", actor=actor)
        except IntegrityError:
            self.reject(
                "file", "", "the records changed while importing (a title or uid is now taken); import again"
            )
            raise ImportRejected(self.report) from None

    def check_still_free(self) -> None:
        """Reject the file when a title or uid it creates was taken since the plan read them."""
        for model, planned in (
            (PamConfiguration, self.configurations),
            (PamDirectory, self.directories),
            (PamUser, self.users),
        ):
            titles = [instance.title for instance in planned]
            uids = [instance.uid for instance in planned]
            for start in range(0, len(planned), 500):
                taken = model.objects.filter(title__in=titles[start : start + 500]).values_list(
                    "title", flat=True
                )
                for title in taken:
                    self.reject(model._meta.verbose_name, title, "created by someone else since the preview")
                if model.objects.filter(uid__in=uids[start : start + 500]).exists():
                    self.reject(model._meta.verbose_name, "", "a uid was taken since the preview")
        if self.report.rejected:
            raise ImportRejected(self.report)


def import_projects(
    projects: list[dict],
    *,
    dry_run: bool = False,
    actor: Actor = SYSTEM_ACTOR,
) -> ImportReport:
    """Plan and validate the records a parsed file describes, then (unless a dry run) write them; return the report.

    Raises ImportRejected (nothing written) when any item is invalid. A dry run only reads the
    database. ``actor`` (audit.actors.Actor) names who imports in the audit events: the web user
    with their address, or the command's operating-system user.
    """
    report = ImportReport(dry_run=dry_run)
    plan = _Plan(report)
    plan.file_passwords = passwords_in(projects)
    for index, project in enumerate(projects):
        where = "project" if len(projects) == 1 else f"project[{index}]"
        try:
            plan.project(project, where)
        except KeeperError as exc:
            report.rejected.append(Item("file", "", str(exc)))
    if report.rejected:
        raise ImportRejected(report)
    if not dry_run:
        plan.write(actor=actor)
    return report


def passwords_in(projects: list[dict]) -> set[str]:
    """Return every password a parsed file holds, so pages that show the file can leave them out."""
    found = set()
    for project in projects:
        data = project.get("pam_data") if isinstance(project, dict) else None
        if not isinstance(data, dict):
            continue
        users = list(data["users"]) if isinstance(data.get("users"), list) else []
        resources = data.get("resources") if isinstance(data.get("resources"), list) else []
        for resource in resources:
            if isinstance(resource, dict) and isinstance(resource.get("users"), list):
                users.extend(resource["users"])
        for user in users:
            if isinstance(user, dict) and isinstance(user.get("password"), str) and user["password"]:
                found.add(user["password"])
    return found

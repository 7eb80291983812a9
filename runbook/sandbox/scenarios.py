"""Scenarios: which fault a playbook section is tested against, and how to judge it.

A scenario is a YAML file in fixtures/scenarios/::

    playbook: incident-response.md      # file name of the playbook
    section: Storage Full               # as --section takes it
    fault: disk-full                    # a name from runbook.sandbox.faults
    variables: {}                       # values for the run, as --var gives them
    skip:                               # steps not run in the sandbox, with why
      - step: 2
        reason: needs the cloud provider's volume API
    expect_output:                      # what a step's output must show
      - step: 1
        matches: "100% /var/lib/quicprochat"
    steps: [1, 3]                       # optional; the section's steps to run
    then:                               # optional; more sections, same shell
      - playbook: key-rotation.md
        section: Auth Token Rotation
    fault_arguments: [short-token]      # optional; passed to qpc-fault NAME
    deployment: compose                 # optional; systemd (the default) or compose
    pending: why it does not pass yet   # optional; the run warns
    post_conditions:                    # checked after the run, in this order
      - service_active
      - client_roundtrip
      - expired_messages_gone
      - unexpired_messages_kept
      - metric: {name: delivery_queue_depth, max: 1000}
      - command:                        # exit status 0 in the container passes
          run: iptables -C INPUT -s 192.0.2.66 -j DROP
          description: the firewall drops 192.0.2.66

The sandbox supplies the server's own settings (QPC_DB_KEY and the other
QPC_* values of /etc/quicprochat/qpc-server.env) for the variables the steps
use, as ``--env-file`` would on the server.

Several scenarios may test one section (one per cause of an incident, say);
``runbook run --scenario NAME`` picks one by its file name without ``.yaml``.
Step numbers in ``skip`` and ``expect_output`` count the section's steps first,
then those of each ``then`` section, as the run numbers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunbookError, UsageError
from .compose import COMPOSE_FAULTS
from .faults import FAULTS

if TYPE_CHECKING:
    from ..model import Playbook, Section

POST_CONDITIONS = (
    "service_active",
    "client_roundtrip",
    "expired_messages_gone",
    "unexpired_messages_kept",
    "old_token_rejected",
    "new_token_accepted",
    "certificate_rotated",
    "database_rekeyed",
    "opaque_rotated",
    "metric",
    "command",
)


#: The deployments the sandbox can start.
DEPLOYMENTS = ("systemd", "compose")


class ScenarioError(UsageError):
    """A scenario file is malformed, or no scenario fits the section."""


@dataclass(frozen=True)
class OutputExpectation:
    step: int
    pattern: str


@dataclass(frozen=True)
class PostCondition:
    kind: str
    #: For ``metric``: name, and min and/or max.
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "command":
            return str(self.arguments["description"])
        if self.kind != "metric":
            return self.kind.replace("_", " ")
        bounds = [
            f"{key} {value}" for key, value in self.arguments.items() if key != "name"
        ]
        return f"metric {self.arguments['name']} " + ", ".join(bounds)


@dataclass(frozen=True)
class FollowUp:
    """A section run after the scenario's own, in the same shell session."""

    playbook: str
    section: str


@dataclass(frozen=True)
class Scenario:
    path: Path
    playbook: str
    section: str
    fault: str
    variables: Mapping[str, str] = field(default_factory=dict)
    skip: Mapping[int, str] = field(default_factory=dict)
    expect_output: tuple[OutputExpectation, ...] = ()
    post_conditions: tuple[PostCondition, ...] = ()
    server_env: Mapping[str, str] = field(default_factory=dict)
    #: Why the section does not pass against its fault yet; None when it does.
    pending: str | None = None
    #: The section's steps to run (1-based); None runs them all.
    steps: tuple[int, ...] | None = None
    then: tuple[FollowUp, ...] = ()
    fault_arguments: tuple[str, ...] = ()
    #: ``systemd`` (a server host) or ``compose`` (a Compose project).
    deployment: str = "systemd"

    @property
    def name(self) -> str:
        """The file name without ``.yaml``, as ``--scenario`` takes it."""
        return self.path.stem


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ScenarioError(f"cannot read scenario {path}: {error}") from error
    where = str(path)
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{where}: a scenario is a mapping with playbook, section, fault"
        )
    known = {
        "playbook", "section", "fault", "description", "variables", "skip",
        "expect_output", "post_conditions", "server_env", "pending", "steps",
        "then", "fault_arguments", "deployment",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    for key in ("playbook", "section", "fault"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ScenarioError(f"{where}: '{key}' must be a non-empty string")
    deployment = data.get("deployment", "systemd")
    if deployment not in DEPLOYMENTS:
        raise ScenarioError(
            f"{where}: unknown deployment {deployment!r}; the sandbox has "
            f"{' and '.join(DEPLOYMENTS)}"
        )
    if deployment == "compose" and data["fault"] not in COMPOSE_FAULTS:
        raise ScenarioError(
            f"{where}: fault {data['fault']!r} has no Compose version; Compose "
            f"scenarios take {', '.join(sorted(COMPOSE_FAULTS))}"
        )
    if data["fault"] not in FAULTS:
        raise ScenarioError(
            f"{where}: unknown fault {data['fault']!r}; known faults: "
            f"{', '.join(sorted(FAULTS))}"
        )
    return Scenario(
        path=path,
        playbook=data["playbook"],
        section=data["section"],
        fault=data["fault"],
        variables=_string_map(data.get("variables"), "variables", where),
        server_env=_string_map(data.get("server_env"), "server_env", where),
        skip=_skips(data.get("skip"), where),
        expect_output=_expectations(data.get("expect_output"), where),
        post_conditions=_post_conditions(data.get("post_conditions"), where),
        pending=_pending(data.get("pending"), where),
        steps=_step_numbers(data.get("steps"), where),
        then=_follow_ups(data.get("then"), where),
        fault_arguments=_arguments(data.get("fault_arguments"), where),
        deployment=deployment,
    )


def scenarios_for(
    directory: Path, playbook_path: str, playbook: Playbook
) -> list[tuple[Scenario, Section]]:
    """Load the scenarios in ``directory`` for one playbook, each with its section.

    A scenario belongs to the playbook whose file name it gives. A section
    that cannot be found is an error that names the scenario file.
    """
    name = Path(playbook_path).name
    pairs = []
    for path in sorted(directory.glob("*.yaml")):
        scenario = load_scenario(path)
        if scenario.playbook != name:
            continue
        try:
            section = playbook.find_section(scenario.section)
        except RunbookError as error:
            raise ScenarioError(
                f"{path}: section {scenario.section!r}: {error}"
            ) from error
        pairs.append((scenario, section))
    return pairs


def find_scenario(
    directory: Path,
    playbook_path: str,
    section_path: tuple[str, ...],
    name: str | None = None,
    deployment: str | None = None,
) -> Scenario:
    """Return the scenario for a section, chosen by playbook file name and section.

    ``name`` (a file name without ``.yaml``) picks one when several scenarios
    test the section; it is required then, unless ``deployment`` leaves one.
    """
    from ..playbook import load_playbook

    pairs = scenarios_for(directory, playbook_path, load_playbook(playbook_path))
    where = " / ".join(section_path)
    found = [scenario for scenario, section in pairs if section.path == section_path]
    if name is not None:
        named = [scenario for scenario, _ in pairs if scenario.name == name]
        if not named:
            listed = ", ".join(s.name for s, _ in pairs) or "none"
            raise ScenarioError(
                f"no scenario named {name!r} in {directory} for "
                f"{Path(playbook_path).name}; scenarios: {listed}"
            )
        if named[0] not in found:
            raise ScenarioError(
                f"scenario {name!r} tests section {named[0].section!r}, not "
                f"{where!r}; pass --section {named[0].section!r} or another "
                "--scenario"
            )
        if deployment is not None and named[0].deployment != deployment:
            raise ScenarioError(
                f"scenario {name!r} is for the {named[0].deployment} deployment, "
                f"not {deployment}; leave out --deployment or pick another scenario"
            )
        return named[0]
    if deployment is not None:
        if deployment not in DEPLOYMENTS:
            raise ScenarioError(
                f"the sandbox has no deployment {deployment!r}; it runs "
                f"{' and '.join(DEPLOYMENTS)} (--deployment)"
            )
        others = sorted({scenario.deployment for scenario in found} - {deployment})
        found = [scenario for scenario in found if scenario.deployment == deployment]
        if not found and others:
            raise ScenarioError(
                f"the scenarios for section {where!r} run the "
                f"{' and '.join(others)} deployment, not {deployment}; leave out "
                f"--deployment, or add a scenario with 'deployment: {deployment}'"
            )
    if not found:
        listed = ", ".join(f"{s.section!r} ({s.path.name})" for s, _ in pairs) or "none"
        raise ScenarioError(
            f"no scenario in {directory} for section {where!r}"
            + (f" and the {deployment} deployment" if deployment else "")
            + " of "
            f"{Path(playbook_path).name}; sections with a scenario: {listed}. Add a "
            "YAML file there (the README's Scenarios section shows the format), or "
            "use --target docker:CONTAINER"
        )
    if len(found) > 1:
        raise ScenarioError(
            f"{len(found)} scenarios test section {where!r}; pick one with "
            "--scenario NAME: " + ", ".join(s.name for s in found)
        )
    return found[0]


def _step_numbers(value: object, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    ):
        raise ScenarioError(
            f"{where}: 'steps' must be a non-empty list of step numbers, as "
            f"'runbook show FILE --section S' numbers them; got {value!r}"
        )
    return tuple(value)


def _follow_ups(value: object, where: str) -> tuple[FollowUp, ...]:
    if value is None:
        return ()
    entries = value if isinstance(value, list) else [None]
    follow_ups = []
    for item in entries:
        if (
            not isinstance(item, dict)
            or set(item) != {"playbook", "section"}
            or not all(isinstance(v, str) and v.strip() for v in item.values())
        ):
            raise ScenarioError(
                f"{where}: 'then' must be a list of {{playbook: FILE.md, section: "
                f"TITLE}} entries; got {item if value is entries else value!r}"
            )
        follow_ups.append(FollowUp(item["playbook"], item["section"]))
    return tuple(follow_ups)


def _arguments(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(item, str | int) and not isinstance(item, bool) for item in value
    ):
        raise ScenarioError(
            f"{where}: 'fault_arguments' must be a list of strings; got {value!r}"
        )
    return tuple(str(item) for item in value)


def _pending(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(
            f"{where}: 'pending' must say why the scenario does not pass"
        )
    return " ".join(value.split())


def _string_map(value: object, key: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ScenarioError(f"{where}: '{key}' must map names to values")
    return {name: str(item) for name, item in value.items()}


def _skips(value: object, where: str) -> dict[int, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ScenarioError(
            f"{where}: 'skip' must be a list of {{step: N, reason: ...}}"
        )
    skips: dict[int, str] = {}
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("step"), int)
            or not isinstance(item.get("reason"), str)
            or not item["reason"].strip()
        ):
            raise ScenarioError(
                f"{where}: each 'skip' entry needs step (a number) and reason "
                f"(why the sandbox cannot run it); got {item!r}"
            )
        skips[item["step"]] = item["reason"].strip()
    return skips


def _expectations(value: object, where: str) -> tuple[OutputExpectation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: 'expect_output' must be a list")
    expectations = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("step"), int)
            or not isinstance(item.get("matches"), str)
        ):
            raise ScenarioError(
                f"{where}: each 'expect_output' entry needs step and matches (a "
                f"regular expression); got {item!r}"
            )
        try:
            re.compile(item["matches"])
        except re.error as error:
            raise ScenarioError(
                f"{where}: bad regular expression {item['matches']!r}: {error}"
            ) from error
        expectations.append(OutputExpectation(item["step"], item["matches"]))
    return tuple(expectations)


def _post_conditions(value: object, where: str) -> tuple[PostCondition, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: 'post_conditions' must be a list")
    conditions = []
    for item in value:
        if isinstance(item, str) and item in POST_CONDITIONS[:-2]:
            conditions.append(PostCondition(item))
            continue
        if isinstance(item, dict) and set(item) == {"metric"}:
            spec = item["metric"]
            if (
                isinstance(spec, dict)
                and isinstance(spec.get("name"), str)
                and set(spec) <= {"name", "min", "max"}
                and ({"min", "max"} & set(spec))
                and all(isinstance(spec[k], int | float) for k in spec if k != "name")
            ):
                conditions.append(PostCondition("metric", dict(spec)))
                continue
        if isinstance(item, dict) and set(item) == {"command"}:
            spec = item["command"]
            if (
                isinstance(spec, dict)
                and set(spec) == {"run", "description"}
                and all(isinstance(v, str) and v.strip() for v in spec.values())
            ):
                conditions.append(PostCondition("command", dict(spec)))
                continue
        raise ScenarioError(
            f"{where}: unknown post-condition {item!r}; use one of "
            f"{', '.join(POST_CONDITIONS[:-2])}, "
            "{metric: {name: NAME, min: N, max: N}} or "
            "{command: {run: COMMAND, description: WHAT ITS SUCCESS SHOWS}}"
        )
    return tuple(conditions)

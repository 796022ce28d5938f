"""Every rule of policy/ as a mandatory pulumi-policy policy. `__main__.py` serves them as the pack "meshburst"."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import apps, credentials, gcp_controls, helm, istio, workloads
from policy.rules import Props, Rule, StackRule

PACK_NAME = "meshburst"


def _control_rule(control: gcp_controls.Control) -> Rule:
    def check(resource_type: str, props: Props) -> list[str]:
        message = control.check(props)
        return [] if message is None else [message]

    return Rule(control.id, control.description, (control.resource_type,), check)


# Opt-in GCP controls (a key such as kmsKey turns them on) are left out: whether a stack opted in is decided by
# components/settings.py from the stack's config, which the pack would have to parse a second time.
# tests/test_gcp_gate.py checks them on a stack with every opt-in on.
RESOURCE_RULES: tuple[Rule, ...] = (
    *workloads.RULES,
    *istio.RULES,
    *helm.RULES,
    *credentials.RULES,
    *(_control_rule(c) for c in gcp_controls.CONTROLS if c.opt_in is None),
)
STACK_RULES: tuple[StackRule, ...] = (*istio.STACK_RULES, *apps.STACK_RULES)


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.violations(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, message in rule.violations(args.resources):
            report_violation(message, urn)

    return StackValidationPolicy(
        name=rule.name, description=rule.description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def policies() -> list[Policy]:
    names = [r.name for r in RESOURCE_RULES] + [r.name for r in STACK_RULES]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"policy names must be unique in the pack; used twice: {duplicates}")
    return [*(resource_policy(r) for r in RESOURCE_RULES), *(stack_policy(r) for r in STACK_RULES)]

"""The Gongyun error tree.

Every error Gongyun raises on purpose derives from ``GongyunError``. Each class carries a
stable machine-readable ``code`` (used as the problem+json ``code`` member, RFC 9457) and
the HTTP status the API answers with. The rooms define their own subclasses next to the code
that raises them; the last column names the module of those not defined here. The whole tree,
with every subclass anywhere in ``gongyun`` (``tests/test_errors.py`` checks it)::

    GongyunError                          500 internal
    ├── ConfigError                       500 config_invalid
    │   └── EdgeConfigError               500 edge_config_invalid           gongyun.edge.errors
    ├── InvalidInput                      400 invalid_input
    │   ├── DataInvalid                   400 maintenance_data_invalid      gongyun.apps.maintenance.errors
    │   ├── ModelIncompatible             400 maintenance_model_incompatible gongyun.apps.maintenance.errors
    │   ├── BaselineTooShort              400 maintenance_baseline_too_short gongyun.apps.maintenance.errors
    │   ├── ValidationFailed              422 validation_failed
    │   │   ├── OeeInputInvalid           422 oee_input_invalid             gongyun.apps.oee.errors
    │   │   ├── SpcInputInvalid           422 spc_input_invalid             gongyun.apps.quality.errors
    │   │   ├── TraceTemplateInvalid      422 trace_template_invalid        gongyun.apps.trace.errors
    │   │   ├── GenealogyCycle            422 trace_genealogy_cycle         gongyun.apps.trace.errors
    │   │   ├── EpcisDocumentInvalid      422 trace_epcis_invalid           gongyun.apps.trace.errors
    │   │   ├── AlarmRuleInvalid          422 alarm_rule_invalid            gongyun.alarms.live
    │   │   ├── AlarmTargetInvalid        422 alarm_target_invalid          gongyun.alarms.live
    │   │   ├── ProfileInvalid            422 edge_profile_invalid          gongyun.edge.errors
    │   │   ├── InstanceInvalid           422 scheduling_instance_invalid   gongyun.apps.scheduling.errors
    │   │   ├── InvalidTemplate           422 identifier_template_invalid   gongyun.idres.templates
    │   │   ├── TemplateViolation         422 identifier_template_violation gongyun.idres.templates
    │   │   ├── ProofError                422 audit_proof_invalid           gongyun.security.audit.merkle
    │   │   ├── NoteError                 422 audit_note_invalid            gongyun.security.audit.note
    │   │   ├── RuleInvalid               422 ids_rule_invalid              gongyun.security.ids.rules
    │   │   └── OutboundTargetRefused     422 outbound_target_refused       gongyun.security.egress
    │   ├── PayloadTooLarge               413 payload_too_large
    │   │   ├── MessageTooLarge           413 bus_payload_too_large         gongyun.bus.base
    │   │   └── RecordTooLarge            413 identifier_record_too_large   gongyun.idres.values
    │   ├── MalformedIdentifier           400 identifier_malformed
    │   │   └── InvalidGS1Key             400 gs1_key_invalid               gongyun.idres.schemes.gs1
    │   ├── CurrentPasswordRequired       400 current_password_required
    │   ├── ExpressionInvalid             400 alarm_expression_invalid      gongyun.alarms.expr
    │   ├── DurableConflict               400 bus_durable_conflict          gongyun.bus.base
    │   ├── InvalidBusArgument            400 bus_argument_invalid          gongyun.bus.base
    │   ├── InvalidSubject                400 bus_subject_invalid           gongyun.bus.base
    │   ├── NoStreamForSubject            400 bus_no_stream                 gongyun.bus.base
    │   ├── StreamConflict                400 bus_stream_conflict           gongyun.bus.base
    │   ├── DecodeError                   400 edge_decode_error             gongyun.edge.errors
    │   ├── SparkplugPayloadInvalid       400 sparkplug_payload_invalid     gongyun.sparkplug.errors
    │   │   ├── DataSetInvalid            400 sparkplug_dataset_invalid     gongyun.sparkplug.errors
    │   │   └── TemplateInvalid           400 sparkplug_template_invalid    gongyun.sparkplug.errors
    │   ├── GatewayLimitReached           400 edge_gateway_limit            gongyun.edge.fleet
    │   ├── InvalidValue                  400 identifier_value_invalid      gongyun.idres.values
    │   ├── PayloadInvalid                400 telemetry_payload_invalid     gongyun.telemetry.consumer
    │   ├── StoreError                    400 telemetry_query_invalid       gongyun.telemetry.store.base
    │   ├── InstanceFileInvalid           400 scheduling_file_invalid       gongyun.apps.scheduling.errors
    │   └── UnitError                     400 unit_invalid                  gongyun.telemetry.units
    ├── AuthError                         401 unauthenticated
    │   ├── InvalidCredentials            401 invalid_credentials
    │   ├── TokenInvalid                  401 token_invalid
    │   └── AccountLocked                 423 account_locked
    ├── PermissionDenied                  403 forbidden
    │   ├── EnrolmentRefused              403 pki_enrolment_refused         gongyun.security.pki.ca
    │   ├── CurrentPasswordInvalid        403 current_password_invalid
    │   └── CommandRefused                403 command_refused               gongyun.edge.errors
    ├── NotFound                          404 not_found
    │   ├── DataKeyGone                   404 data_key_shredded             gongyun.security.classify.keyring
    │   ├── ModelNotFound                 404 maintenance_model_not_found   gongyun.apps.maintenance.errors
    │   ├── HandleNotFound                404 identifier_not_found          gongyun.idres.errors
    │   ├── PrefixNotServed               404 identifier_prefix_not_served  gongyun.idres.errors
    │   ├── TraceItemNotFound             404 trace_item_not_found          gongyun.apps.trace.errors
    │   └── UnknownEnterprise             404 trace_enterprise_unknown      gongyun.apps.trace.errors
    ├── Conflict                          409 conflict
    │   ├── WorkOrderTransition           409 maintenance_order_transition  gongyun.apps.maintenance.errors
    │   ├── LastPlatformAdmin             409 last_platform_admin
    │   ├── CheckpointRefused             409 audit_checkpoint_refused      gongyun.security.audit.witness
    │   ├── CommandExpired                409 alarm_command_expired         gongyun.alarms.apply
    │   ├── InvalidTransition             409 alarm_transition_invalid      gongyun.alarms.states
    │   ├── FilingTransition              409 identifier_filing_transition  gongyun.idres.errors
    │   ├── HandleExists                  409 identifier_exists             gongyun.idres.errors
    │   └── IncidentTransitionInvalid     409 ids_incident_transition_invalid gongyun.security.ids.store
    ├── RateLimited                       429 rate_limited
    │   └── LoginThrottled                429 login_throttled
    ├── ServiceUnavailable                503 service_unavailable
    │   ├── DatabaseUnavailable           503 database_unavailable
    │   ├── BusUnavailable                503 bus_unavailable
    │   │   ├── BusClosed                 503 bus_closed                    gongyun.bus.base
    │   │   └── BusError                  503 bus_unavailable               gongyun.bus.base
    │   ├── Deposed                       503 service_unavailable           gongyun.alarms.saver
    │   └── NotOnline                     503 sparkplug_not_online          gongyun.sparkplug.errors
    ├── DeviceError                       502 device_error                  gongyun.edge.errors
    │   └── CommandNotConfirmed           502 command_not_confirmed         gongyun.edge.errors
    └── ResolutionFailed                  502 identifier_resolution_failed  gongyun.idres.errors

A code means one thing: classes that share a code (``BusError`` is a ``bus_unavailable``,
``Deposed`` a ``service_unavailable``) share its status too.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GongyunError(Exception):
    """Base of every error Gongyun raises on purpose."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.title
        self.details = details
        super().__init__(self.message)

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document."""
        problem: dict[str, Any] = {
            "type": f"https://gongyun.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        if instance:
            problem["instance"] = instance
        if self.details:
            problem.update({k: v for k, v in self.details.items() if k not in problem})
        return problem


class ConfigError(GongyunError):
    """The configuration is invalid or incomplete."""

    code = "config_invalid"
    title = "Configuration invalid"


class InvalidInput(GongyunError):
    """The caller sent something that cannot be accepted."""

    code = "invalid_input"
    status = 400
    title = "Invalid input"


class ValidationFailed(InvalidInput):
    """A body or parameter failed validation; ``errors`` lists every violation."""

    code = "validation_failed"
    status = 422
    title = "Validation failed"


class PayloadTooLarge(InvalidInput):
    """A request body exceeded the configured limit."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class MalformedIdentifier(InvalidInput):
    """An identifier does not follow the syntax."""

    code = "identifier_malformed"
    title = "Malformed identifier"


class CurrentPasswordRequired(InvalidInput):
    """A user changing their own password did not give the current one."""

    code = "current_password_required"
    title = "Current password required"


class AuthError(GongyunError):
    """The caller is not authenticated."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class InvalidCredentials(AuthError):
    """Username, password or API key is wrong."""

    code = "invalid_credentials"
    title = "Invalid credentials"


class TokenInvalid(AuthError):
    """A token is malformed, expired or revoked."""

    code = "token_invalid"
    title = "Token invalid"


class AccountLocked(AuthError):
    """Too many wrong passwords: the account is locked for a while.

    Sign-in never raises it (a locked account answers like a wrong password, so the answer
    does not reveal that the account exists); kept so clients that know the code still parse.
    """

    code = "account_locked"
    status = 423
    title = "Account locked"


class PermissionDenied(GongyunError):
    """The caller is authenticated but lacks a permission."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class CurrentPasswordInvalid(PermissionDenied):
    """A user changing their own password gave a wrong current password (or is locked out)."""

    code = "current_password_invalid"
    title = "Current password invalid"


class NotFound(GongyunError):
    """The object does not exist or is not visible to the caller."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(GongyunError):
    """The request conflicts with existing state (duplicate name, stale version)."""

    code = "conflict"
    status = 409
    title = "Conflict"


class LastPlatformAdmin(Conflict):
    """The change would leave the installation without an enabled platform administrator."""

    code = "last_platform_admin"
    title = "Last platform administrator"


class RateLimited(GongyunError):
    """Too many requests."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class LoginThrottled(RateLimited):
    """Too many failed sign-ins from one client address: wait ``retry_after_s``."""

    code = "login_throttled"
    title = "Too many sign-in attempts"


class ServiceUnavailable(GongyunError):
    """A backing service is not reachable."""

    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The metadata database is not reachable."""

    code = "database_unavailable"
    title = "Database unavailable"


class BusUnavailable(ServiceUnavailable):
    """The message bus is not reachable."""

    code = "bus_unavailable"
    title = "Bus unavailable"

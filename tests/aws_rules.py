"""Rules AWS applies to calls carrying a policy document, which moto does not: every such call made
while the tests run is checked against them, and refused as AWS would refuse it.

KMS (CreateKey, PutKeyPolicy; AWS KMS API reference and "Key policies" guide):
- the policy is JSON of at most 32 KB, version 2012-10-17, each statement with Effect, Principal,
  Action and Resource, statement ids unique, conditions with documented operators;
- every AWS principal exists: "*", an account's root, or a role that exists;
- lockout safety: unless BypassPolicyLockoutSafetyCheck is true, the policy itself lets the caller
  make a later PutKeyPolicy (a statement naming the caller's role; the account root counts only
  when the caller's own IAM policy allows kms:PutKeyPolicy);
- CityShare's own rule on top of it, with or without the bypass: the account keeps the key
  manageable (the root may call PutKeyPolicy and no unconditional deny takes that away).

IAM (CreateRole): the trust policy's principals exist (an account, a role that exists, a service).

S3 (PutObject) into a bucket created with Object Lock: the request carries Content-MD5 or a
checksum (S3 refuses it otherwise: "Content-MD5 OR x-amz-checksum- HTTP header is required for Put
Object requests with Object Lock parameters"). KMS (Sign): a RAW message is at most 4,096 bytes.

STS (AssumeRole; STS API reference): a session policy is at most 2,048 characters of plain text, the
duration 900 to 3,600 seconds (a role assumed by a role's session: role chaining), the session name
2 to 64 letters, digits or `_+=,.@-`, each tag's value at most 256 characters.

DynamoDB: a BatchGetItem asks for at most 100 keys, a TransactWriteItems holds at most 100 actions.
Lambda (Invoke, synchronous): the request payload is at most 6 MB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

_ROOT = re.compile(r"^(?:arn:aws[a-z-]*:iam::)?(\d{12})(?::root)?$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_OPERATORS = re.compile(
    r"^(?:(?:ForAnyValue|ForAllValues):)?"
    r"(?:String(?:Not)?Equals(?:IgnoreCase)?|String(?:Not)?Like|Numeric(?:Not)?Equals|Numeric(?:Less|Greater)Than(?:Equals)?"
    r"|Date(?:Not)?Equals|Date(?:Less|Greater)Than(?:Equals)?|Bool|BinaryEquals|(?:Not)?IpAddress|Arn(?:Not)?(?:Equals|Like)|Null)"
    r"(?:IfExists)?$"
)
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
MAX_KEY_POLICY_BYTES = 32_768


class PolicyRefused(ClientError):
    """What AWS answers a call these rules refuse."""


def refuse(operation: str, code: str, message: str) -> PolicyRefused:
    return PolicyRefused({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    return [str(p) for p in _listed((principal or {}).get("AWS", []))]


def _grants(statement: dict[str, Any], action: str) -> bool:
    return any(a in ("*", "kms:*", action) for a in _listed(statement.get("Action", [])))


def check_key_policy(
    document: str,
    caller_role: str | None,
    bypass: bool,
    role_exists: Callable[[str], bool],
    caller_iam_allows_put_key_policy: bool = False,
    operation: str = "CreateKey",
) -> None:
    """Raise PolicyRefused where KMS (or CityShare's manageability rule) would refuse `document`."""
    if len(document.encode()) > MAX_KEY_POLICY_BYTES:
        raise refuse(operation, "MalformedPolicyDocumentException", "the key policy exceeds 32 KB")
    try:
        policy = json.loads(document)
    except ValueError:
        raise refuse(operation, "MalformedPolicyDocumentException", "the key policy is not JSON") from None
    statements = _listed(policy.get("Statement", []))
    if policy.get("Version") != "2012-10-17" or not statements:
        raise refuse(operation, "MalformedPolicyDocumentException", "version 2012-10-17 with at least one statement")
    sids = [s.get("Sid") for s in statements if s.get("Sid")]
    if len(sids) != len(set(sids)):
        raise refuse(operation, "MalformedPolicyDocumentException", "statement ids must be unique")
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny") or not {"Principal", "Action", "Resource"} <= set(statement):
            raise refuse(operation, "MalformedPolicyDocumentException", f"statement {statement.get('Sid')} is incomplete")
        for operator in statement.get("Condition", {}):
            if not _OPERATORS.match(operator):
                raise refuse(operation, "MalformedPolicyDocumentException", f"unknown condition operator {operator}")
        for principal in _principals(statement):
            if principal != "*" and not _ROOT.match(principal) and not (_ROLE.match(principal) and role_exists(principal)):
                raise refuse(operation, "MalformedPolicyDocumentException", f"the principal {principal} does not exist")
    allows = [s for s in statements if s["Effect"] == "Allow" and _grants(s, "kms:PutKeyPolicy")]
    denied = any(
        s["Effect"] == "Deny" and "*" in _principals(s) and _grants(s, "kms:PutKeyPolicy") and not s.get("Condition")
        for s in statements
    )
    root_manages = any(_ROOT.match(p) for s in allows for p in _principals(s)) and not denied
    if not root_manages:
        raise refuse(operation, "MalformedPolicyDocumentException", "the account must keep the key manageable (its root)")
    if bypass:
        return
    caller_may = any(p in ("*", caller_role) for s in allows for p in _principals(s)) or caller_iam_allows_put_key_policy
    if denied or not caller_may:
        raise refuse(
            operation,
            "MalformedPolicyDocumentException",
            "The new key policy will not allow you to update the key policy in the future",
        )


class AwsRules:
    """Checks every call with a policy document made while active (see the module's docstring)."""

    def __init__(
        self, role_exists: Callable[[str], bool], caller_role: str | None = None, caller_iam_allows_put_key_policy: bool = False
    ) -> None:
        self.role_exists = role_exists
        self.caller_role = caller_role
        self.caller_iam_allows_put_key_policy = caller_iam_allows_put_key_policy
        self.checked: list[str] = []
        self.locked_buckets: set[str] = set()

    @contextmanager
    def active(self) -> Iterator[AwsRules]:
        original = BaseClient._make_api_call
        rules = self

        def checked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            rules.check(client.meta.service_model.service_name, operation, params)
            return original(client, operation, params)

        BaseClient._make_api_call = checked  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]

    def check(self, service: str, operation: str, params: dict[str, Any]) -> None:
        role_exists = self.role_exists
        if service == "kms" and operation in ("CreateKey", "PutKeyPolicy") and "Policy" in params:
            check_key_policy(
                params["Policy"],
                self.caller_role,
                bool(params.get("BypassPolicyLockoutSafetyCheck")),
                role_exists,
                self.caller_iam_allows_put_key_policy,
                operation,
            )
            self.checked.append(f"kms.{operation}")
        if service == "s3" and operation == "CreateBucket" and params.get("ObjectLockEnabledForBucket"):
            self.locked_buckets.add(str(params["Bucket"]))
        if service == "s3" and operation == "PutObject" and params.get("Bucket") in self.locked_buckets:
            if not (params.get("ContentMD5") or params.get("ChecksumAlgorithm") or any(k.startswith("Checksum") for k in params)):
                raise refuse(
                    operation,
                    "InvalidRequest",
                    "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
                )
            self.checked.append("s3.PutObject(object lock)")
        if service == "kms" and operation == "Sign":
            if params.get("MessageType", "RAW") == "RAW" and len(params.get("Message", b"")) > 4096:
                raise refuse(operation, "ValidationException", "a RAW message to sign is at most 4096 bytes")
            self.checked.append("kms.Sign")
        # Limits on every call of their kind (not listed in `checked`: they are not policy documents).
        if service == "dynamodb" and operation == "BatchGetItem":
            keys = sum(len(wanted.get("Keys", [])) for wanted in params.get("RequestItems", {}).values())
            if keys > 100:
                raise refuse(operation, "ValidationException", "Too many items requested for the BatchGetItem call (at most 100)")
        if service == "dynamodb" and operation == "TransactWriteItems" and len(params.get("TransactItems", [])) > 100:
            raise refuse(operation, "ValidationException", "a transaction holds at most 100 actions")
        synchronous = params.get("InvocationType", "RequestResponse") == "RequestResponse"
        if service == "lambda" and operation == "Invoke" and synchronous and len(params.get("Payload", b"")) > 6 * 1024 * 1024:
            raise refuse(operation, "RequestEntityTooLargeException", "a synchronous request payload is at most 6 MB")
        if service == "sts" and operation == "AssumeRole":
            if len(params.get("Policy", "")) > 2048:
                raise refuse(operation, "ValidationError", "a session policy is at most 2048 characters")
            if not 900 <= int(params.get("DurationSeconds", 3600)) <= 3600:
                raise refuse(operation, "ValidationError", "a chained role session lasts 900 to 3600 seconds")
            if not _SESSION_NAME.match(str(params.get("RoleSessionName", ""))):
                raise refuse(operation, "ValidationError", "RoleSessionName must be 2 to 64 of [\\w+=,.@-]")
            if any(len(str(tag.get("Value", ""))) > 256 for tag in params.get("Tags", [])):
                raise refuse(operation, "ValidationError", "a session tag's value is at most 256 characters")
            self.checked.append("sts.AssumeRole")
        if service == "iam" and operation == "CreateRole":
            trust = json.loads(params["AssumeRolePolicyDocument"])
            for statement in _listed(trust.get("Statement", [])):
                for principal in _principals(statement):
                    if principal != "*" and not _ROOT.match(principal) and not role_exists(principal):
                        raise refuse(operation, "MalformedPolicyDocument", f"the principal {principal} does not exist")
            self.checked.append("iam.CreateRole")


def role_in(iam: Any) -> Callable[[str], bool]:
    """Whether a role ARN names a role that exists, asked of `iam` (moto's)."""

    def exists(arn: str) -> bool:
        if not _ROLE.match(arn):
            return False
        try:
            iam.get_role(RoleName=arn.rsplit("/", 1)[1])
        except ClientError:
            return False
        return True

    return exists

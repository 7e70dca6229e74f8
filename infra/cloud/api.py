"""The REST API: the spec's routes to their functions, a REQUEST authorizer on every method (no
caching: tokens are single-use), request validation, gateway responses in application/problem+json,
and the limits of infra/spec.py's LimitsSpec applied as the embedded gateway applies them:

- the stage's throttle, for all callers together (before the authorizer runs);
- each department's throttle: a usage plan whose API key each department gets when it is provisioned
  (functions/identity/provisioning.py), named by the authorizer for each request (key source AUTHORIZER);
- a WAF web ACL on the stage: AWS's managed rule groups and a rate rule per client IP, which stops
  unauthenticated floods before they reach the (uncached) authorizer.

Access logs (KMS-encrypted) carry the department and principal the authorizer verified.

Browsers: the stewards' console (infra/cloud/console.py) is served from another origin, so the signed
routes answer CORS preflights for that origin alone (a mock integration: no function runs, no
credential is involved), and gateway errors carry the same Access-Control-Allow-Origin so the page can
show them. The functions add it to their own answers (functions/handlers/http.py).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.cloud.config import LOG_RETENTION_NAMES, DeploymentConfig
from infra.request_models import BODY_REFUSED, MODEL_NAME, json_body_routes
from infra.spec import (
    AUTHORIZER_CACHE_SECONDS,
    PUBLIC,
    LimitsSpec,
    RouteSpec,
    browser_error_headers,
    gateway_problem,
    preflight_headers,
    signed_route_methods,
)

# (gateway response, status, code, title)
_GATEWAY_PROBLEMS = (
    (apigw.ResponseType.UNAUTHORIZED, 401, "unauthenticated", "The caller could not be authenticated"),
    (apigw.ResponseType.ACCESS_DENIED, 403, "forbidden", "The caller may not do this"),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, 404, "route_not_found", "No such route"),
    (apigw.ResponseType.THROTTLED, 429, "too_many_requests", "Too many requests"),
    (apigw.ResponseType.QUOTA_EXCEEDED, 429, "too_many_requests", "Too many requests"),
    (apigw.ResponseType.WAF_FILTERED, 403, "request_blocked", "The request was blocked by the firewall"),
    # The department's API key is made when it is provisioned, seconds after it is registered.
    (apigw.ResponseType.INVALID_API_KEY, 409, "department_not_ready", "The department is still being set up; try again shortly"),
    (apigw.ResponseType.REQUEST_TOO_LARGE, 413, "payload_too_large", "The request body is too large"),
    # A fixed text: gateway response templates are plain substitution, and the validator's own words
    # ($context.error.validationErrorString) carry unescaped quotes that would break the JSON.
    (apigw.ResponseType.BAD_REQUEST_BODY, 400, "invalid_request", BODY_REFUSED),
    (apigw.ResponseType.DEFAULT_4_XX, None, "invalid_request", "The request was refused"),
    (apigw.ResponseType.DEFAULT_5_XX, None, "internal_error", "Internal error"),
)

# $context variables of each access log line: who (verified by the authorizer), what, and how it ended.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "department": "$context.authorizer.department_id",
    "principal": "$context.authorizer.principal_id",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "authorizerStatus": "$context.authorizer.status",
    "authorizerError": "$context.authorizer.error",
    "wafStatus": "$context.waf.status",
    "error": "$context.error.responseType",
}


def problem_template(code: str, title: str, status: int | None) -> str:
    # The DEFAULT_4XX and DEFAULT_5XX responses keep the integration's status: no `status` member then.
    body = gateway_problem(status or (500 if code == "internal_error" else 400), code, title, title)
    if not status:
        del body["status"]
    # API Gateway fills $context variables in gateway response templates.
    body["request_id"] = "$context.requestId"
    return json.dumps(body)


def waf_rate_per_ip(limits: LimitsSpec) -> int:
    """Requests one address may send in WAF's 5-minute window: what the whole stage accepts. A city's
    departments usually share one egress address, so each department's own rate (its usage plan)
    is API Gateway's to enforce, per API key; the WAF only stops one address flooding beyond that."""
    return int(limits.stage_rate_per_second * 300)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: DeploymentConfig,
        routes: tuple[RouteSpec, ...],
        functions: dict[str, lambda_.Function],
        default_authorizer: str,
        limits: LimitsSpec,
        logs_key: kms.IKey,
        browser_origin: str,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        retention = logs.RetentionDays[LOG_RETENTION_NAMES[config.log_retention_days]]
        access_logs = logs.LogGroup(self, "AccessLogs", retention=retention, encryption_key=logs_key, removal_policy=removal)
        # One REQUEST authorizer per kind of caller (signed requests, never cached: tokens are
        # single-use; Delta Sharing recipients' bearer tokens, cached: see AUTHORIZER_CACHE_SECONDS).
        self.authorizers = {
            name: apigw.RequestAuthorizer(
                self,
                "SignedRequests" if name == default_authorizer else f"Authorizer-{name}",
                handler=functions[name],
                identity_sources=[apigw.IdentitySource.header("Authorization")],
                results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS.get(name, 0)),
            )
            for name in sorted({default_authorizer, *(r.authorizer for r in routes if r.authorizer and r.authorizer != PUBLIC)})
        }
        self.authorizer = self.authorizers[default_authorizer]
        self.rest_api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"cityshare-{config.stage}",
            description="CityShare: governed data sharing between the city's departments",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # On the city's own name, API Gateway's execute-api address is off: the name's TLS
            # policy is then the only way in.
            disable_execute_api_endpoint=config.api_domain_name is not None,
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                tracing_enabled=True,
                metrics_enabled=True,
                throttling_rate_limit=limits.stage_rate_per_second,
                throttling_burst_limit=limits.stage_burst,
            ),
            default_method_options=apigw.MethodOptions(
                authorizer=self.authorizer, authorization_type=apigw.AuthorizationType.CUSTOM, api_key_required=True
            ),
        )
        self.domain_name = config.api_domain_name if config.api_certificate_arn else None
        self.domain = (
            self.rest_api.add_domain_name(
                "Domain",
                domain_name=config.api_domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", config.api_certificate_arn),
                security_policy=apigw.SecurityPolicy.TLS_1_2,
                endpoint_type=apigw.EndpointType.REGIONAL,
            )
            if config.api_domain_name and config.api_certificate_arn
            else None
        )
        self.usage_plan = self.rest_api.add_usage_plan(
            "Departments",
            name=f"cityshare-{config.stage}-departments",
            description="Every department's API key is on this plan: each is throttled on its own",
            throttle=apigw.ThrottleSettings(rate_limit=limits.rate_per_second, burst_limit=limits.burst),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)],
        )
        self._routes(routes, functions)
        self._preflights(routes, browser_origin)
        browser_headers = {name: f"'{value}'" for name, value in browser_error_headers(browser_origin).items()}
        for response_type, status, code, title in _GATEWAY_PROBLEMS:
            self.rest_api.add_gateway_response(
                f"Problem-{response_type.response_type}",
                type=response_type,
                status_code=str(status) if status else None,
                response_headers={"Content-Type": "'application/problem+json'", **browser_headers},
                templates={"application/json": problem_template(code, title, status)},
            )
        self.web_acl = self._firewall(config, limits, retention, removal, logs_key)

    def _routes(self, routes: tuple[RouteSpec, ...], functions: dict[str, lambda_.Function]) -> None:
        validator = self.rest_api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        integrations: dict[str, apigw.Integration] = {}
        owners: dict[str, RouteSpec] = {}
        body_model = self.rest_api.add_model(
            "BodyModel",
            content_type="application/json",
            model_name=MODEL_NAME,
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, title=MODEL_NAME, type=apigw.JsonSchemaType.OBJECT),
        )
        with_body = json_body_routes()
        for route in routes:
            if route.function not in integrations:
                integrations[route.function] = self._proxy(functions[route.function], route.function)
            resource = self.rest_api.root.resource_for_path(route.path)
            resource.add_method(
                route.method,
                integrations[route.function],
                request_validator=validator,
                request_models={"application/json": body_model} if (route.method, route.path) in with_body else None,
                **self._guard(route),
            )
            owners[route.path] = route
        for path, route in owners.items():
            # Any other method on a known path reaches its function (after the authorizer), which
            # answers 405 with Allow (or, for Delta Sharing, the protocol's 404), as the embedded gateway does.
            self.rest_api.root.resource_for_path(path).add_method(
                "ANY", integrations[route.function], request_validator=validator, **self._guard(route)
            )

    def _proxy(self, function: lambda_.Function, name: str) -> apigw.Integration:
        """A Lambda proxy integration, with one permission for this API's stage to invoke the function.
        CDK's LambdaIntegration adds one per method (~100 of the stack's 500 resources); API Gateway
        invokes a function only from the methods integrated with it, so the stage is scope enough."""
        stack = Stack.of(self)
        function.add_permission(
            f"InvokedByApi-{name}",
            principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
            source_arn=self.rest_api.arn_for_execute_api(stage=self.rest_api.deployment_stage.stage_name),
        )
        return apigw.Integration(
            type=apigw.IntegrationType.AWS_PROXY,
            integration_http_method="POST",
            uri=stack.format_arn(
                service="apigateway",
                account="lambda",
                resource="path/2015-03-31/functions",
                resource_name=f"{function.function_arn}/invocations",
            ),
        )

    @property
    def origin(self) -> str:
        """The scheme and host browsers call (the console's content security policy allows it)."""
        if self.domain_name:
            return f"https://{self.domain_name}"
        stack = Stack.of(self)
        return f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}"

    @property
    def url(self) -> str:
        """The API's root URL for profiles: the city's name when it has one, else API Gateway's stage URL."""
        return f"{self.origin}/" if self.domain_name else self.rest_api.url

    def _preflights(self, routes: tuple[RouteSpec, ...], browser_origin: str) -> None:
        """OPTIONS on every path of a signed route, answered by API Gateway itself for `browser_origin`."""
        for path, allowed in sorted(signed_route_methods(routes).items()):
            headers = {name: f"'{value}'" for name, value in preflight_headers(browser_origin, allowed).items()}
            self.rest_api.root.resource_for_path(path).add_method(
                "OPTIONS",
                apigw.MockIntegration(
                    request_templates={"application/json": '{"statusCode": 204}'},
                    integration_responses=[
                        apigw.IntegrationResponse(
                            status_code="204",
                            response_parameters={f"method.response.header.{name}": value for name, value in headers.items()},
                        )
                    ],
                ),
                authorization_type=apigw.AuthorizationType.NONE,
                api_key_required=False,
                method_responses=[
                    apigw.MethodResponse(
                        status_code="204", response_parameters={f"method.response.header.{name}": True for name in headers}
                    )
                ],
            )

    def _guard(self, route: RouteSpec) -> dict[str, Any]:
        """Who may call a route: the caller its authorizer verifies, or (public routes) anyone, without an API key."""
        if route.authorizer == PUBLIC:
            return {"authorization_type": apigw.AuthorizationType.NONE, "api_key_required": False}
        authorizer = self.authorizers[route.authorizer] if route.authorizer else self.authorizer
        return {"authorizer": authorizer, "authorization_type": apigw.AuthorizationType.CUSTOM}

    def _firewall(
        self,
        config: DeploymentConfig,
        limits: LimitsSpec,
        retention: logs.RetentionDays,
        removal: RemovalPolicy,
        logs_key: kms.IKey,
    ) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        def managed(priority: int, name: str, overrides: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(name),
            )

        rate_per_ip = wafv2.CfnWebACL.RuleProperty(
            name="RequestsPerClientIp",
            priority=1,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=config.waf_requests_per_ip or waf_rate_per_ip(limits),
                    aggregate_key_type="IP",
                    evaluation_window_sec=300,
                )
            ),
            visibility_config=visibility("RequestsPerClientIp"),
        )
        web_acl = wafv2.CfnWebACL(
            self,
            "Firewall",
            name=f"cityshare-{config.stage}",  # CloudWatch's WAF metrics are per web ACL name (the alarms')
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"cityshare-{config.stage}"),
            rules=[
                managed(0, "AWSManagedRulesAmazonIpReputationList"),
                rate_per_ip,
                # Records and data travel as JSON bodies up to MAX_BODY_BYTES (the gate checks them):
                # the common set's 8 KB body-size rule would block them, so it only counts.
                managed(2, "AWSManagedRulesCommonRuleSet", overrides=("SizeRestrictions_BODY",)),
                managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "FirewallOnTheStage", resource_arn=self.rest_api.deployment_stage.stage_arn, web_acl_arn=web_acl.attr_arn
        )
        # WAF logs to a log group whose name starts with aws-waf-logs-; the bearer token is redacted.
        firewall_logs = logs.LogGroup(
            self,
            "FirewallLogs",
            log_group_name=f"aws-waf-logs-cityshare-{config.stage}",
            retention=retention,
            encryption_key=logs_key,
            removal_policy=removal,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "FirewallLogging",
            resource_arn=web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=firewall_logs.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "authorization"})],
        )
        return web_acl

"""The REST API: the spec's routes to their functions, a REQUEST authorizer on every method (no
caching: tokens are single-use), request validation, throttling, access and execution logs, and
gateway responses in application/problem+json."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.spec import RouteSpec

# (gateway response, status, code, title)
_GATEWAY_PROBLEMS = (
    (apigw.ResponseType.UNAUTHORIZED, 401, "unauthenticated", "The request's signature could not be verified"),
    (apigw.ResponseType.ACCESS_DENIED, 403, "forbidden", "The caller may not do this"),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, 404, "route_not_found", "No such route"),
    (apigw.ResponseType.THROTTLED, 429, "too_many_requests", "Too many requests"),
    (apigw.ResponseType.REQUEST_TOO_LARGE, 413, "payload_too_large", "The request body is too large"),
    (apigw.ResponseType.BAD_REQUEST_BODY, 400, "invalid_request", "The request is not valid"),
    (apigw.ResponseType.DEFAULT_4_XX, None, "invalid_request", "The request was refused"),
    (apigw.ResponseType.DEFAULT_5_XX, None, "internal_error", "Internal error"),
)


def problem_template(code: str, title: str, status: int | None) -> str:
    body: dict[str, object] = {"type": f"https://cityshare.city/problems/{code}", "title": title, "code": code, "detail": title}
    if status:
        body["status"] = status
    # API Gateway fills $context variables in gateway response templates.
    body["request_id"] = "$context.requestId"
    return json.dumps(body)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        stage: str,
        routes: tuple[RouteSpec, ...],
        functions: dict[str, lambda_.Function],
        authorizer_function: lambda_.Function,
        rate_limit: float,
        burst_limit: int,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR, removal_policy=RemovalPolicy.RETAIN
        )
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "SignedRequests",
            handler=authorizer_function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=Duration.seconds(0),
        )
        self.rest_api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"cityshare-{stage}",
            description="CityShare: governed data sharing between the city's departments",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=stage,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                tracing_enabled=True,
                metrics_enabled=True,
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
            ),
            default_method_options=apigw.MethodOptions(
                authorizer=self.authorizer, authorization_type=apigw.AuthorizationType.CUSTOM
            ),
        )
        validator = self.rest_api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        integrations: dict[str, apigw.LambdaIntegration] = {}
        owners: dict[str, str] = {}
        for route in routes:
            if route.function not in integrations:
                integrations[route.function] = apigw.LambdaIntegration(functions[route.function], allow_test_invoke=False)
            resource = self.rest_api.root.resource_for_path(route.path)
            resource.add_method(route.method, integrations[route.function], request_validator=validator)
            owners[route.path] = route.function
        for path, function in owners.items():
            # Any other method on a known path reaches its function (after the authorizer), which
            # answers 405 with Allow, as the embedded gateway does.
            self.rest_api.root.resource_for_path(path).add_method("ANY", integrations[function], request_validator=validator)
        for response_type, status, code, title in _GATEWAY_PROBLEMS:
            self.rest_api.add_gateway_response(
                f"Problem-{code}-{status or 'default'}",
                type=response_type,
                status_code=str(status) if status else None,
                response_headers={"Content-Type": "'application/problem+json'"},
                templates={"application/json": problem_template(code, title, status)},
            )

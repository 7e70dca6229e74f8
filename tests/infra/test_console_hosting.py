"""The console in AWS, on the synthesised template: a private bucket only CloudFront reads, the
embedded stack's security headers with the API as the only place the page may connect to, its files
and config.json published at deploy, and CORS on the API for the console's origin alone."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from pydantic import ValidationError

from infra.cloud.config import DeploymentConfig
from infra.cloud.console import VIEWER_REQUEST_FUNCTION
from infra.spec import CONSOLE_HEADERS, CONSOLE_HSTS_MAX_AGE_SECONDS, PUBLIC, SPEC, console_content_security_policy
from tests.infra.conftest import of_type
from tests.infra.iam import Resources


def one(resources: Resources, resource_type: str, name_part: str = "Console") -> tuple[str, dict[str, Any]]:
    found = [(name, r) for name, r in of_type(resources, resource_type).items() if name_part in name]
    assert len(found) == 1, (resource_type, [name for name, _ in found])
    return found[0]


def joined(value: Any) -> str:
    """A Fn::Join rendered with its references as <Ref> / <Ref.Attribute>, to compare with text."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(joined(part) for part in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise AssertionError(value)


@pytest.fixture(scope="module")
def distribution(resources: Resources) -> tuple[str, dict[str, Any]]:
    return one(resources, "AWS::CloudFront::Distribution")


@pytest.fixture(scope="module")
def api_origin(resources: Resources) -> str:
    api, _ = one(resources, "AWS::ApiGateway::RestApi", "Api")
    return f"https://<{api}>.execute-api.eu-west-1.<AWS::URLSuffix>"


def test_the_files_bucket_is_private_and_read_by_this_distribution_alone(resources: Resources, distribution: Any) -> None:
    bucket_name, bucket = one(resources, "AWS::S3::Bucket", "ConsoleFiles")
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    assert bucket["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "console/"
    _, policy = one(resources, "AWS::S3::BucketPolicy", "ConsoleFiles")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allowed) == 1
    (grant,) = allowed
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert grant["Action"] == "s3:GetObject"
    assert joined(grant["Condition"]["StringEquals"]["AWS:SourceArn"]).endswith(f":distribution/<{distribution[0]}>")
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)
    origins = distribution[1]["Properties"]["DistributionConfig"]["Origins"]
    assert [joined(o["DomainName"]) for o in origins] == [f"<{bucket_name}.RegionalDomainName>"]
    assert origins[0]["OriginAccessControlId"]  # origin access control, not a public website endpoint


def test_the_distribution_is_https_only_logged_and_sends_the_embedded_stacks_headers(
    resources: Resources, distribution: Any, api_origin: str
) -> None:
    config = distribution[1]["Properties"]["DistributionConfig"]
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert [a["EventType"] for a in behaviour["FunctionAssociations"]] == ["viewer-request"]
    assert "CacheBehaviors" not in config  # one behaviour: the API is not proxied, it keeps its own WAF
    assert "Logging" in config
    policy_name, policy = one(resources, "AWS::CloudFront::ResponseHeadersPolicy")
    assert behaviour["ResponseHeadersPolicyId"] == {"Ref": policy_name}
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert all(header["Override"] for header in headers.values())
    # The embedded stack's policy, where scripts may connect to the page's own origin (its
    # config.json) and to the API's, nothing else.
    csp = joined(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    assert csp == console_content_security_policy(api_origin)
    assert f"connect-src 'self' {api_origin};" in csp
    assert "connect-src 'self';" in CONSOLE_HEADERS["Content-Security-Policy"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == CONSOLE_HSTS_MAX_AGE_SECONDS
    assert headers["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert headers["FrameOptions"]["FrameOption"] == CONSOLE_HEADERS["X-Frame-Options"]
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == CONSOLE_HEADERS["Referrer-Policy"]


def test_the_page_and_its_config_are_published_at_deploy(resources: Resources, distribution: Any) -> None:
    deployments = of_type(resources, "Custom::CDKBucketDeployment")
    assert len(deployments) == 1
    (publish,) = deployments.values()
    properties = publish["Properties"]
    assert properties["DestinationBucketKeyPrefix"] == "console/"
    assert properties["DistributionId"] == {"Ref": distribution[0]}
    assert properties["DistributionPaths"] == ["/console/*"]
    assert properties["Prune"] is True
    # Two sources: the built files, and config.json whose endpoint API Gateway's URL fills at deploy.
    assert len(properties["SourceObjectKeys"]) == 2
    (marker,) = [m for m in properties["SourceMarkers"] if m].pop().values()
    endpoint = joined(marker)
    assert endpoint.startswith('"https://<Api') and ".execute-api." in endpoint and endpoint.endswith('/"')


VIEWER_CASES: list[tuple[str, dict[str, Any]]] = [
    ("/", {"statusCode": 308, "location": "/console/"}),
    ("/console", {"statusCode": 308, "location": "/console/"}),
    ("/console/", {"uri": "/console/index.html"}),
    ("/console/main.js", {"uri": "/console/main.js"}),
    ("/console/config.json", {"uri": "/console/config.json"}),
    ("/landing/transport/x.csv", {"statusCode": 404}),
    ("/console/../landing/x", {"statusCode": 404}),
    ("/consoleX/index.html", {"statusCode": 404}),
]


def test_the_viewer_request_function_runs_as_cloudfront_runs_it(resources: Resources) -> None:
    """The function's code in the template is the file, and the file, run by node (the same
    ECMAScript CloudFront's JS 2.0 runtime executes), routes as documented."""
    _, function = one(resources, "AWS::CloudFront::Function")
    assert function["Properties"]["FunctionCode"] == VIEWER_REQUEST_FUNCTION.read_text()
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    driver = (
        VIEWER_REQUEST_FUNCTION.read_text()
        + "\nconst uris = JSON.parse(process.argv[1]);\n"
        + "console.log(JSON.stringify(uris.map((uri) => handler({ request: { uri: uri, headers: {} } }))));\n"
    )
    uris = [uri for uri, _ in VIEWER_CASES]
    results = json.loads(
        subprocess.run(["node", "-e", driver, json.dumps(uris)], check=True, capture_output=True, text=True).stdout
    )
    for (uri, expected), result in zip(VIEWER_CASES, results, strict=True):
        if "uri" in expected:
            assert result.get("uri") == expected["uri"], uri
            assert "statusCode" not in result, uri
        else:
            assert result["statusCode"] == expected["statusCode"], uri
            if "location" in expected:
                assert result["headers"]["location"]["value"] == expected["location"], uri


def test_the_api_answers_preflights_for_the_console_origin_alone(resources: Resources, distribution: Any) -> None:
    console_origin = f"'https://<{distribution[0]}.DomainName>'"
    preflights = [
        m["Properties"]
        for m in of_type(resources, "AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    signed_paths = {route.path for route in SPEC.routes if route.authorizer is None}
    assert len(preflights) == len(signed_paths)
    for preflight in preflights:
        assert preflight["AuthorizationType"] == "NONE" and preflight["ApiKeyRequired"] is False
        assert preflight["Integration"]["Type"] == "MOCK"  # no function runs for a preflight
        (answer,) = preflight["Integration"]["IntegrationResponses"]
        headers = {k.rsplit(".", 1)[1]: joined(v) for k, v in answer["ResponseParameters"].items()}
        assert headers["Access-Control-Allow-Origin"] == console_origin
        assert headers["Access-Control-Allow-Headers"] == "'Authorization,Content-Type,Idempotency-Key'"
        assert "*" not in headers["Access-Control-Allow-Methods"]
    # Delta Sharing recipients' tools and the public catalog are not browsers of the console.
    others = {route.path for route in SPEC.routes if route.authorizer is not None}
    assert others and not others & signed_paths
    assert any(route.authorizer == PUBLIC for route in SPEC.routes)
    for response in of_type(resources, "AWS::ApiGateway::GatewayResponse").values():
        parameters = response["Properties"]["ResponseParameters"]
        assert joined(parameters["gatewayresponse.header.Access-Control-Allow-Origin"]) == console_origin


def test_the_http_functions_know_the_console_origin_and_no_other_function_does(resources: Resources, distribution: Any) -> None:
    serving = {route.function for route in SPEC.routes if route.authorizer is None}
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        spec_name = next((f.name for f in SPEC.functions if name.startswith(f"FunctionsFunction{f.name.replace('-', '')}")), None)
        if spec_name in serving:
            assert joined(variables["CONSOLE_ORIGIN"]) == f"https://<{distribution[0]}.DomainName>", name
        else:
            assert "CONSOLE_ORIGIN" not in variables, name


def test_the_console_url_is_an_output(template: Any, distribution: Any) -> None:
    outputs = template.to_json()["Outputs"]
    assert joined(outputs["ConsoleUrl"]["Value"]) == f"https://<{distribution[0]}.DomainName>/console/"


def test_a_console_domain_needs_its_certificate_in_us_east_1() -> None:
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    config = DeploymentConfig.model_validate({"consoleDomainName": "data.city.example", "consoleCertificateArn": certificate})
    assert config.console_domain_name == "data.city.example"
    with pytest.raises(ValidationError, match="go together"):
        DeploymentConfig.model_validate({"consoleDomainName": "data.city.example"})
    with pytest.raises(ValidationError):
        DeploymentConfig.model_validate(
            {"consoleDomainName": "data.city.example", "consoleCertificateArn": certificate.replace("us-east-1", "eu-west-1")}
        )

"""The stewards' console in AWS: its built files (console/dist) in a private bucket, served only
through CloudFront (origin access control: the bucket answers the distribution alone), with the same
security headers as on the embedded stack (infra/spec.py) and a config.json naming the API.

The page calls API Gateway directly (its content security policy allows that origin and no other),
so every request still passes the API's WAF, authorizer and per-department throttles; the API answers
CORS for this distribution's origin only (infra/cloud/api.py, functions/handlers/http.py).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra.cloud.storage import logged_private_bucket
from infra.spec import CONSOLE_HEADERS, CONSOLE_HSTS_MAX_AGE_SECONDS, CONSOLE_PATH, console_content_security_policy

VIEWER_REQUEST_FUNCTION = Path(__file__).with_name("console_viewer_request.js")


class ConsoleHosting(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        built_console: Path,
        api_origin: str,
        access_logs: s3.IBucket,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        domain_name: str | None = None,
        certificate_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # Public code, no data: SSE-S3 lets CloudFront's origin access control read it without a key grant.
        self.bucket = logged_private_bucket(
            self, "Files", access_logs, "console/", [s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))]
        )
        # CloudFront's standard logs are delivered with object ACLs: a bucket of their own that allows them.
        self.logs = logged_private_bucket(
            self,
            "RequestLogs",
            access_logs,
            "console-request-logs/",
            [s3.LifecycleRule(expiration=Duration.days(400), noncurrent_version_expiration=Duration.days(30))],
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="CityShare console: CSP (scripts from the page, API calls to the API only), HSTS, no framing",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=console_content_security_policy(api_origin), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.seconds(CONSOLE_HSTS_MAX_AGE_SECONDS), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption[CONSOLE_HEADERS["X-Frame-Options"]], override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
        )
        viewer_request = cloudfront.Function(
            self,
            "ViewerRequest",
            code=cloudfront.FunctionCode.from_file(file_path=str(VIEWER_REQUEST_FUNCTION)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="/ and /console to /console/; a folder to its index.html; nothing outside /console/",
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="CityShare stewards' console",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=viewer_request, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
            domain_names=[domain_name] if domain_name else None,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn) if certificate_arn else None,
            # Only with the city's own certificate: CloudFront fixes the policy of its default one.
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if certificate_arn else None,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="console/",
        )
        self.origin = f"https://{domain_name or self.distribution.distribution_domain_name}"
        self._built = built_console
        self._logs_key = logs_key
        self._log_retention = log_retention

    def publish(self, endpoint: str, audience: str) -> None:
        """Copies the built page and its config.json (the API's URL, the tokens' audience) to the
        bucket at each deploy, and invalidates the distribution's cached copy."""
        deployment_logs = logs.LogGroup(
            self,
            "PublishLogs",
            retention=self._log_retention,
            encryption_key=self._logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        prefix = CONSOLE_PATH.strip("/") + "/"
        s3_deployment.BucketDeployment(
            self,
            "Publish",
            destination_bucket=self.bucket,
            destination_key_prefix=prefix,
            sources=[
                s3_deployment.Source.asset(str(self._built)),
                s3_deployment.Source.json_data("config.json", {"endpoint": endpoint, "audience": audience}),
            ],
            # The page's files are named as built (no content hash): browsers revalidate them.
            cache_control=[s3_deployment.CacheControl.from_string("no-cache")],
            distribution=self.distribution,
            distribution_paths=[f"{CONSOLE_PATH}*"],
            log_group=deployment_logs,
            memory_limit=256,
            prune=True,
        )

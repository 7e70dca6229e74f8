// CloudFront Function (cloudfront-js-2.0), viewer request, in front of the console's bucket.
// The page lives under /console/ as on the embedded stack; S3 behind origin access control serves no
// index documents, so a folder's URL gets its index.html, and nothing outside /console/ reaches S3.
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri === "/" || uri === "/console") {
    return { statusCode: 308, statusDescription: "Permanent Redirect", headers: { location: { value: "/console/" } } };
  }
  if (uri.indexOf("/console/") !== 0 || uri.indexOf("..") !== -1) {
    return { statusCode: 404, statusDescription: "Not Found" };
  }
  if (uri.charAt(uri.length - 1) === "/") {
    request.uri = uri + "index.html";
  }
  return request;
}

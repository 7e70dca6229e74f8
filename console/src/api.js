// Every call is a signed request, as the SDK makes it; errors arrive as application/problem+json.

import { requestTarget, signedToken } from "./signing.js";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export class Api {
  constructor(identity, endpoint) {
    this.identity = identity;
    this.endpoint = endpoint.replace(/\/$/, "");
  }

  async call(method, path, { params = {}, body } = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
    const pathAndQuery = path + (query ? `?${query}` : "");
    const data = body === undefined ? new Uint8Array() : new TextEncoder().encode(JSON.stringify(body));
    const token = await signedToken(this.identity, this.identity.privateKey, method, requestTarget(pathAndQuery), data);
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(this.endpoint + pathAndQuery, { method, headers, body: body === undefined ? undefined : data });
    const text = await response.text();
    if (!response.ok) {
      let problem = {};
      try {
        problem = JSON.parse(text);
      } catch {
        /* not JSON: shown as is */
      }
      // A validation problem names each field and what is wrong with it: said, not "1 problem(s)".
      const fields = (Array.isArray(problem.errors) ? problem.errors : [])
        .filter((issue) => issue && typeof issue === "object")
        .map((issue) => `${(issue.location || []).filter((part) => part !== "body").join(".") || "request"}: ${issue.message || ""}`);
      const detail = fields.length ? fields.join("; ") : problem.detail || text.slice(0, 200);
      throw new ApiError(response.status, problem.code || "http_error", detail);
    }
    return text ? JSON.parse(text) : null;
  }

  get = (path, params) => this.call("GET", path, { params });
  post = (path, body) => this.call("POST", path, { body });
  patch = (path, body) => this.call("PATCH", path, { body });
  put = (path, body) => this.call("PUT", path, { body });
  delete = (path) => this.call("DELETE", path);

  async *pages(path, key, params = {}) {
    let cursor;
    do {
      const page = await this.get(path, { ...params, cursor });
      yield* page[key];
      cursor = page.next_cursor;
    } while (cursor);
  }
}

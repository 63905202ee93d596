import { defineErrors } from "@erebus/core/provider";

export const apiKeyErrors = defineErrors({
  ERR_APIKEY_MALFORMED: { status: 401, title: "The API key is not in this server's key format" },
  ERR_APIKEY_CHECKSUM_INVALID: { status: 401, title: "The API key's checksum does not match (mistyped or truncated)" },
  ERR_APIKEY_INVALID: { status: 401, title: "Unknown API key" },
  ERR_APIKEY_REVOKED: { status: 401, title: "The API key was revoked" },
  ERR_APIKEY_EXPIRED: { status: 401, title: "The API key expired" },
  ERR_APIKEY_ROTATED: { status: 401, title: "The API key was rotated and its grace period is over" },
  ERR_APIKEY_PEPPER_MISMATCH: { status: 401, title: "The API key was created with a different server pepper than this server's" },
  ERR_APIKEY_SESSION_REQUIRED: { status: 403, title: "Managing API keys needs a signed-in session, not an API key" },
  ERR_APIKEY_NOT_FOUND: { status: 404, title: "No such API key of yours" },
  ERR_APIKEY_LIMIT: { status: 409, title: "You have as many active API keys as allowed" },
});

export type ApiKeyErrorCode = keyof typeof apiKeyErrors.codes;

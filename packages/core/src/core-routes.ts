import * as z from "zod";
import { personSchema, userReferenceSchema, type RouteDoc } from "./openapi.js";

/** The OpenAPI descriptions of core's own routes. */
export const coreRouteDocs = {
  session: {
    summary: "Who is signed in",
    description: "The session's (or API key's) identity, the person it belongs to with all its identities, the session itself, how the request authenticated, and its scopes.",
    auth: ["session", "apiKey"],
    responses: {
      200: {
        description: "signed in",
        schema: z.object({
          user: userReferenceSchema,
          person: personSchema,
          session: z.object({ id: z.string(), userId: z.string(), createdAt: z.string(), expiresAt: z.string(), authenticatedAt: z.string() }).nullable(),
          via: z.string(),
          scopes: z.array(z.string()),
        }),
      },
    },
  },
  signOut: {
    summary: "Sign out",
    description: "Revokes the session of the request (cookie or bearer token) and clears the cookie. 204 also when there was none.",
    responses: { 204: { description: "signed out" } },
  },
  openapi: {
    summary: "This document",
    responses: { 200: { description: "the OpenAPI 3.1 document of every mounted route", schema: z.looseObject({ openapi: z.string() }) } },
  },
} satisfies Record<string, RouteDoc>;

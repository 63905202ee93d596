import { describe, expect, it } from "vitest";
import { createAuth, silentLogger } from "@erebus/core";
import { passkeyProvider } from "./index.js";
import { relyingParty, resolvePasskeyOptions } from "./options.js";

describe("passkeyProvider options", () => {
  it("has the documented defaults", () => {
    expect(resolvePasskeyOptions({})).toEqual({
      userVerification: "preferred",
      attestation: "none",
      challengeTtl: 300,
      algorithms: [-8, -7, -257],
      maxPasskeys: 20,
      authenticatorNames: {},
      rateLimit: { options: 30, verify: 30 },
    });
  });

  it("refuses bad options at construction with a TypeError naming them", () => {
    expect(() => passkeyProvider({ attestation: "enterprise" as never })).toThrow(/passkeyProvider: option "attestation"/);
    expect(() => passkeyProvider({ userVerification: "discouraged" as never })).toThrow(/"userVerification"/);
    expect(() => passkeyProvider({ algorithms: [-999] })).toThrow(/"algorithms.0"/);
    expect(() => passkeyProvider({ challengeTtl: 3600 })).toThrow(/"challengeTtl"/);
    expect(() => passkeyProvider({ rpId: "Example.COM" })).toThrow(/"rpId"/);
    expect(() => passkeyProvider({ rpID: "example.com" } as never)).toThrow(/did you mean "rpId"/);
  });

  it("takes the RP id and origin from baseURL; a configured RP id must be its host or a parent domain", () => {
    const options = resolvePasskeyOptions({});
    expect(relyingParty(options, new URL("https://app.example.com"))).toEqual({ rpId: "app.example.com", origin: "https://app.example.com", rpName: "app.example.com" });
    expect(relyingParty(resolvePasskeyOptions({ rpId: "example.com", rpName: "Example" }), new URL("https://app.example.com:8443"))).toEqual({ rpId: "example.com", origin: "https://app.example.com:8443", rpName: "Example" });
    expect(() => relyingParty(resolvePasskeyOptions({ rpId: "evil.com" }), new URL("https://app.example.com"))).toThrow(/must be the host of baseURL/);
    expect(() => relyingParty(resolvePasskeyOptions({ rpId: "ample.com" }), new URL("https://app.example.com"))).toThrow(/must be the host of baseURL/);
    expect(() => relyingParty(options, new URL("http://127.0.0.1:3000"))).toThrow(/IP address/);
  });

  it("a bad RP id for the app's baseURL fails createAuth, not the first request", () => {
    expect(() => createAuth({ database: "pglite://memory", baseURL: "https://app.example.com", providers: [passkeyProvider({ rpId: "other.example" })], logger: silentLogger })).toThrow(TypeError);
  });
});

import { Strategy as BearerStrategy } from "passport-http-bearer";
import { Strategy as LocalStrategy } from "passport-local";
import { Strategy as OAuth2Strategy } from "passport-oauth2";
import { Strategy } from "passport-strategy";
import { describe, expect, it } from "vitest";
import { ErebusStrategy, passportProvider } from "./index.js";

const local = () => new LocalStrategy((_u, _p, done) => done(null, false));
const oauth2 = () =>
  new OAuth2Strategy({ authorizationURL: "https://idp.example/auth", tokenURL: "https://idp.example/token", clientID: "c", clientSecret: "s", callbackURL: "/cb" }, (_a: string, _r: string, p: unknown, done: (e: unknown, u: unknown) => void) =>
    done(null, p),
  );
const toIdentity = () => ({ network: "x", sourceIdentifier: "x", sourceType: { type: "x" } });
class Opaque extends Strategy {
  override authenticate(): void {}
}

describe("passportProvider options: checked once, at construction, as TypeErrors that say what to change", () => {
  it("guesses the kind from the strategy, and names the provider passport-<id>", () => {
    expect(passportProvider({ id: "github", strategy: oauth2() })).toMatchObject({ id: "passport-github", emits: ["oauth"] });
    expect(() => passportProvider({ id: "local", strategy: local(), toIdentity })).not.toThrow();
    expect(() => passportProvider({ id: "bearer", strategy: new BearerStrategy((_t, done) => done(null, false)), toIdentity })).not.toThrow();
  });

  it("refuses what cannot work", () => {
    const cases: [unknown, RegExp][] = [
      [{ id: "Git Hub", strategy: oauth2() }, /option "id"/],
      [{ id: "github", strategy: {} }, /option "strategy" must be a Passport strategy/],
      [{ id: "opaque", strategy: new Opaque() }, /set kind/],
      [{ id: "local", strategy: local() }, /needs toIdentity/],
      [{ id: "opaque", strategy: new Opaque(), kind: "header", toIdentity }, /needs header/],
      [{ id: "github", strategy: oauth2(), authenticateOptions: { callbackURL: "https://evil.example/cb" } }, /callbackURL is set by Erebus/],
      [{ id: "github", strategy: oauth2(), errorRedirect: "//evil.example" }, /option "errorRedirect"/],
      [{ id: "github", strategy: oauth2(), timeot: 5 }, /did you mean "timeout"/],
      [{ id: "github", strategy: oauth2(), header: "x-key" }, /for header strategies/],
      [{ id: "opaque", strategy: new Opaque(), kind: "redirect" }, /not OAuth-based; give toIdentity/],
    ];
    for (const [options, message] of cases) expect(() => passportProvider(options as never), JSON.stringify(Object.keys(options as object))).toThrow(message);
    for (const [options] of cases) expect(() => passportProvider(options as never)).toThrow(TypeError);
  });

  it("ErebusStrategy wants createAuth()'s result and a realm that fits in a challenge", () => {
    expect(() => new ErebusStrategy(undefined as never)).toThrow(/createAuth/);
    expect(() => new ErebusStrategy({ authenticate: async () => null }, { realm: 'a"b' })).toThrow(TypeError);
    expect(new ErebusStrategy({ authenticate: async () => null }).name).toBe("erebus");
  });
});

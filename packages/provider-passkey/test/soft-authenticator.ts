import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { isoCBOR } from "@simplewebauthn/server/helpers";

/**
 * A software WebAuthn authenticator for tests (CTAP2 semantics, "none" attestation): it makes real
 * ES256 (P-256) or EdDSA (Ed25519) key pairs with node:crypto and builds registration and assertion
 * responses byte for byte as WebAuthn §6.1 / §6.5 describe, so the server verifies real signatures.
 * Every field can be overridden to build an attack.
 */
export type Algorithm = "ES256" | "EdDSA";

export interface Overrides {
  origin?: string;
  rpId?: string;
  type?: string;
  challenge?: string;
  up?: boolean;
  uv?: boolean;
  counter?: number;
  crossOrigin?: boolean;
  topOrigin?: string;
  userHandle?: string | null;
  /** Registration: a "packed" self attestation (signed by the credential's key) instead of "none"; `bad` breaks its signature. */
  attestation?: "none" | "packed" | "packed-bad";
  /** Changes the client data after it was signed (tampering). */
  tamperClientData?: (clientData: Record<string, unknown>) => Record<string, unknown>;
}

const b64u = (bytes: Uint8Array | Buffer | string) => Buffer.from(bytes as Uint8Array).toString("base64url");
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest();

export class SoftAuthenticator {
  readonly credentialId: Buffer = randomBytes(32);
  readonly aaguid: Buffer;
  userHandle: string | undefined;
  counter: number;
  uv: boolean;
  private readonly privateKey: KeyObject;
  private readonly cose: Map<number, number | Uint8Array>;

  constructor(
    readonly alg: Algorithm,
    readonly rp: { rpId: string; origin: string },
    options: { uv?: boolean; counter?: number; aaguid?: string } = {},
  ) {
    this.uv = options.uv ?? true;
    this.counter = options.counter ?? 0;
    this.aaguid = Buffer.from((options.aaguid ?? "00000000-0000-0000-0000-000000000000").replace(/-/g, ""), "hex");
    if (alg === "ES256") {
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const jwk = publicKey.export({ format: "jwk" });
      this.privateKey = privateKey;
      // RFC 9053 §7.1.1: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y.
      this.cose = new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, "base64url")], [-3, Buffer.from(jwk.y!, "base64url")]]);
    } else {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const jwk = publicKey.export({ format: "jwk" });
      this.privateKey = privateKey;
      // RFC 9053 §7.2: kty OKP (1), alg EdDSA (-8), crv Ed25519 (6), x.
      this.cose = new Map<number, number | Uint8Array>([[1, 1], [3, -8], [-1, 6], [-2, Buffer.from(jwk.x!, "base64url")]]);
    }
  }

  get id(): string {
    return b64u(this.credentialId);
  }

  private flags(o: Overrides, attested: boolean): number {
    let flags = 0;
    if (o.up ?? true) flags |= 0x01;
    if (o.uv ?? this.uv) flags |= 0x04;
    flags |= 0x08 | 0x10; // backup eligible, backed up (a synced passkey)
    if (attested) flags |= 0x40;
    return flags;
  }

  private authData(o: Overrides, attested: boolean, counter: number): Buffer {
    const head = Buffer.alloc(37);
    sha256(o.rpId ?? this.rp.rpId).copy(head, 0);
    head[32] = this.flags(o, attested);
    head.writeUInt32BE(counter, 33);
    if (!attested) return head;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(this.credentialId.length);
    return Buffer.concat([head, this.aaguid, len, this.credentialId, Buffer.from(isoCBOR.encode(this.cose))]);
  }

  private clientData(type: string, challenge: string, o: Overrides): { json: Buffer; signed: Buffer } {
    const data: Record<string, unknown> = { type: o.type ?? type, challenge: o.challenge ?? challenge, origin: o.origin ?? this.rp.origin, crossOrigin: o.crossOrigin ?? false };
    if (o.topOrigin) data.topOrigin = o.topOrigin;
    const signed = Buffer.from(JSON.stringify(data));
    const json = o.tamperClientData ? Buffer.from(JSON.stringify(o.tamperClientData({ ...data }))) : signed;
    return { json, signed };
  }

  private signature(authData: Buffer, clientData: Buffer): Buffer {
    const message = Buffer.concat([authData, sha256(clientData)]);
    // ES256: ASN.1 DER ECDSA signature over SHA-256 (WebAuthn §6.5.6); EdDSA: the raw 64 bytes.
    return this.alg === "ES256" ? sign("sha256", message, this.privateKey) : sign(null, message, this.privateKey);
  }

  /** `navigator.credentials.create()` with these creation options (PublicKeyCredentialCreationOptionsJSON). */
  register(options: { challenge: string; user: { id: string } }, o: Overrides = {}) {
    this.userHandle = options.user.id;
    const authData = this.authData(o, true, o.counter ?? this.counter);
    const { json } = this.clientData("webauthn.create", options.challenge, o);
    const format = o.attestation ?? "none";
    let attStmt = new Map<string, unknown>();
    if (format !== "none") {
      // WebAuthn §8.2 (packed, self attestation): alg and the credential key's signature over authData ‖ SHA-256(clientDataJSON).
      const sig = this.signature(authData, json);
      if (format === "packed-bad") sig[sig.length - 1]! ^= 0x01;
      attStmt = new Map<string, unknown>([["alg", this.alg === "ES256" ? -7 : -8], ["sig", sig]]);
    }
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([["fmt", format === "none" ? "none" : "packed"], ["attStmt", attStmt], ["authData", authData]]) as never);
    return {
      id: this.id,
      rawId: this.id,
      type: "public-key" as const,
      response: { clientDataJSON: b64u(json), attestationObject: b64u(attestationObject), transports: ["internal", "hybrid"] },
      authenticatorAttachment: "platform" as const,
      clientExtensionResults: {},
    };
  }

  /** `navigator.credentials.get()` with these request options; the counter moves forward first, as a real authenticator's does. */
  assert(options: { challenge: string }, o: Overrides = {}) {
    if (o.counter === undefined && this.counter > 0) this.counter += 1;
    const counter = o.counter ?? this.counter;
    const authData = this.authData(o, false, counter);
    const { json, signed } = this.clientData("webauthn.get", options.challenge, o);
    const signature = this.signature(authData, signed);
    const userHandle = o.userHandle === null ? undefined : (o.userHandle ?? this.userHandle);
    return {
      id: this.id,
      rawId: this.id,
      type: "public-key" as const,
      response: { clientDataJSON: b64u(json), authenticatorData: b64u(authData), signature: b64u(signature), ...(userHandle === undefined ? {} : { userHandle }) },
      authenticatorAttachment: "platform" as const,
      clientExtensionResults: {},
    };
  }
}

/** A browser's cookie jar over fetch: what makes "the browser that asked" a thing in HTTP tests. */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string, readonly origin: string) {}

  async post(path: string, body?: unknown, init: { method?: string; headers?: Record<string, string>; raw?: string } = {}) {
    const headers: Record<string, string> = { origin: this.origin, ...init.headers };
    if (body !== undefined || init.raw !== undefined) headers["content-type"] ??= "application/json";
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const res = await fetch(`${this.base}/auth${path}`, { method: init.method ?? "POST", headers, body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)), redirect: "manual" });
    for (const header of res.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a)) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await res.text();
    let json: any = text;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, body: json, headers: res.headers };
  }

  get(path: string) {
    return this.post(path, undefined, { method: "GET" });
  }
}

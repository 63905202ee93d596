import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isCanonicalDerSignature } from "./verify.js";

describe("isCanonicalDerSignature", () => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const signatures = Array.from({ length: 50 }, (_, i) => sign("sha256", Buffer.from(`message ${i}`), privateKey));

  it("accepts what OpenSSL makes (r and s of every length, with and without a leading zero)", () => {
    for (const sig of signatures) expect(isCanonicalDerSignature(sig)).toBe(true);
  });

  it("refuses every single-byte change of the encoding the library's ASN.1 reader would accept (another outer tag, lengths)", () => {
    const sig = signatures[0]!;
    for (const at of [0, 1, 2, 3]) {
      for (let byte = 0; byte < 256; byte++) {
        if (byte === sig[at]) continue;
        const edited = Buffer.from(sig);
        edited[at] = byte;
        expect(isCanonicalDerSignature(edited), `byte ${at} = ${byte}`).toBe(false);
      }
    }
  });

  it("refuses trailing bytes, truncation, raw r||s and non-minimal integers", () => {
    const sig = signatures[1]!;
    expect(isCanonicalDerSignature(Buffer.concat([sig, Buffer.from([0])]))).toBe(false);
    expect(isCanonicalDerSignature(sig.subarray(0, sig.length - 1))).toBe(false);
    expect(isCanonicalDerSignature(Buffer.alloc(64, 1))).toBe(false);
    // INTEGER 1 padded with a needless zero.
    expect(isCanonicalDerSignature(Buffer.from("300702020001020101", "hex"))).toBe(false);
    expect(isCanonicalDerSignature(Buffer.from("3006020101020101", "hex"))).toBe(true);
  });
});

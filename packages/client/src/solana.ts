export {
  keypairSigner,
  kitSigner,
  toSolanaSigner,
  base58Encode,
  base58Decode,
  type SolanaSigner,
  type SolanaKeypairLike,
  type SolanaKitSignerLike,
  type SolanaSignerInput,
} from "./signers.js";
export { formatSiwsMessage, type SolanaSignInInput } from "./messages.js";

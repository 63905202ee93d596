// The example page, on @erebus/client (the package's dist, served at /vendor/erebus-client/):
// asks the server who is signed in, and drives the sign-in forms.
import { createErebusClient, ErebusError } from "/vendor/erebus-client/index.js";
import { chainIdOf, eip1193Signer } from "/vendor/erebus-client/ethereum.js";
import { base58Encode, formatSiwsMessage } from "/vendor/erebus-client/solana.js";
import { signInWithStandardWallet, watchSolanaWallets } from "/vendor/erebus-client/wallet-standard.js";

const $ = (id) => document.getElementById(id);
// This page's origin; the session is an HttpOnly cookie.
const client = createErebusClient();

/** Runs a client call: shows its ErebusError on the page (and answers undefined), or clears the error. */
async function attempt(call) {
  try {
    const value = await call();
    showError(null);
    return value;
  } catch (error) {
    if (!(error instanceof ErebusError)) throw error;
    showError(error.problem);
    return undefined;
  }
}

function showError(problem) {
  const el = $("error");
  el.textContent = problem ? `${problem.title ?? "Error"}${problem.detail ? `: ${problem.detail}` : ""} (${problem.code ?? problem.status})` : "";
  el.hidden = !problem;
}

async function refresh() {
  const body = await client.session().catch(() => null);
  const signedIn = body !== null;
  $("status").textContent = signedIn
    ? `Signed in as ${body.user.network}:${body.user.source_identifier} (${body.user.user_type})`
    : "Not signed in.";
  $("user").textContent = signedIn ? JSON.stringify(body.user, null, 2) : "";
  $("user").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("api-keys").hidden = !(signedIn && body.via === "session");
  if (signedIn && body.via === "session") await loadKeys();
  else $("new-key-shown").hidden = true;
}

// ---- API keys -----------------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function showNewKey({ key, scopes }, note = "") {
  $("new-key-value").textContent = key;
  // Reading is GET; an action (/api/trade) is POST, never GET: GET requests are not CSRF-checked.
  $("new-key-curl").textContent = [
    `curl -H "X-API-Key: ${key}" ${location.origin}/api/me`,
    ...(scopes.includes("trade") ? [`curl -X POST -H "X-API-Key: ${key}" ${location.origin}/api/trade`] : []),
  ].join("\n");
  $("new-key-note").textContent = note;
  $("new-key-note").hidden = !note;
  $("new-key-shown").hidden = false;
}

// Rotation replaces the secret; the old one stops at once or keeps working for a grace period, so
// programs can be switched over without an outage. The person chooses which.
const ROTATIONS = [
  { className: "rotate-now", label: "Rotate now", title: "New secret; the old one stops working at once", graceSeconds: 0 },
  { className: "rotate-grace", label: "Rotate, 1 h grace", title: "New secret; the old one keeps working for an hour", graceSeconds: 3600 },
];

function rotatedNote(graceSeconds, body) {
  if (graceSeconds === 0) return "The old key stopped working.";
  const until = new Date(body.previousValidUntil ?? Date.now() + graceSeconds * 1000);
  return `The old key keeps working until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} (1 hour).`;
}

async function loadKeys() {
  const keys = await attempt(() => client.apiKeys.list());
  if (!keys) return;
  const rows = keys.map((key) => {
    const tr = document.createElement("tr");
    tr.dataset.keyId = key.id;
    const gone = key.revokedAt !== null;
    tr.append(
      cell(key.name, gone ? "revoked" : ""),
      cell(`${key.prefix}_${key.id}_…${key.last4}`),
      cell(key.scopes.join(", ") || "(none)"),
      cell(key.expiresAt ? key.expiresAt.slice(0, 10) : "never"),
      cell(gone ? "revoked" : key.lastUsedAt ? key.lastUsedAt.replace("T", " ").slice(0, 16) : "never"),
    );
    const actions = document.createElement("td");
    if (!gone) {
      const rotations = ROTATIONS.map(({ className, label, title, graceSeconds }) => {
        const rotate = document.createElement("button");
        rotate.textContent = label;
        rotate.title = title;
        rotate.className = className;
        rotate.addEventListener("click", async () => {
          const rotated = await attempt(() => client.apiKeys.rotate(key.id, { gracePeriodSeconds: graceSeconds }));
          if (rotated) showNewKey(rotated, rotatedNote(graceSeconds, rotated));
          await loadKeys();
        });
        return rotate;
      });
      const revoke = document.createElement("button");
      revoke.textContent = "Revoke";
      revoke.className = "revoke";
      revoke.addEventListener("click", async () => {
        await attempt(() => client.apiKeys.revoke(key.id));
        await loadKeys();
      });
      actions.append(rotations[0], " ", rotations[1], " ", revoke);
    }
    tr.append(actions);
    return tr;
  });
  $("key-list").querySelector("tbody").replaceChildren(...rows);
}

$("new-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  const scopes = [...document.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
  const days = $("key-expiry").value;
  const created = await attempt(() => client.apiKeys.create({ name: $("key-name").value, scopes, ...(days ? { expiresInDays: Number(days) } : {}) }));
  if (created) {
    showNewKey(created);
    $("key-name").value = "";
  }
  await loadKeys();
});

$("sign-out").addEventListener("click", async () => {
  await attempt(() => client.signOut());
  await refresh();
});

const devForm = $("dev-sign-in");
if (devForm) {
  devForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Core's development sign-in (testProvider), only mounted in development: not a client method.
    await attempt(() => client.json("/auth/test/sign-in", { method: "POST", body: JSON.stringify({ handle: $("handle").value }) }));
    await refresh();
  });
}

// ---- OAuth / OpenID Connect --------------------------------------------------------------------

async function loadOAuthButtons() {
  const providers = await client.oauth.providers().catch(() => []);
  const links = providers.map((provider) => {
    const a = document.createElement("a");
    a.className = "button";
    a.href = client.oauth.startURL(provider.id, { returnTo: "/" });
    a.textContent = `Sign in with ${provider.label}`;
    a.dataset.provider = provider.id;
    return a;
  });
  $("oauth-buttons").replaceChildren(...links);
}

// A failed OAuth sign-in comes back as /?error=ERR_…
const failed = new URLSearchParams(location.search).get("error");
if (failed && /^ERR_[A-Z_]+$/.test(failed)) showError({ title: "Sign-in failed", code: failed });
loadOAuthButtons();

// ---- email ------------------------------------------------------------------------------------

$("email-start").addEventListener("submit", async (event) => {
  event.preventDefault();
  const mode = $("email-mode").value;
  const started = await attempt(() => client.email.start({ email: $("email").value, mode }));
  $("email-status").hidden = !started;
  $("email-code").hidden = !(started && mode === "code");
});

$("email-code").addEventListener("submit", async (event) => {
  event.preventDefault();
  const signedIn = await attempt(() => client.email.verify({ email: $("email").value, code: $("code").value }));
  if (signedIn) {
    $("email-code").hidden = true;
    $("email-status").hidden = true;
  }
  await refresh();
});

// ---- wallets ------------------------------------------------------------------------------------

const walletStatus = (text) => {
  $("wallet-status").textContent = text;
};

function ethereumWalletName(ethereum) {
  if (ethereum.isMetaMask) return "metamask";
  if (ethereum.isCoinbaseWallet) return "coinbase";
  if (ethereum.isRabby) return "rabby";
  if (ethereum.isBraveWallet) return "brave";
  return "unknown";
}

/** What a wallet threw, for the status line: an ErebusError is shown as the page's error instead. */
function walletFailed(error) {
  if (error instanceof ErebusError) {
    showError(error.problem);
    walletStatus(error.code === "ERR_SIWE_CHAIN_NOT_ALLOWED" ? "Switch your wallet to an allowed network and try again." : "Sign-in failed.");
  } else {
    walletStatus(`The wallet said: ${error?.message ?? error}`);
  }
}

// EIP-4361 with an EIP-1193 wallet: the server prepares the message (EIP-55 address included), the
// client checks it names this site, the wallet signs it.
$("siwe").addEventListener("click", async () => {
  const ethereum = window.ethereum;
  if (!ethereum) {
    walletStatus("No Ethereum wallet found. Install a browser wallet such as MetaMask, then reload this page.");
    return;
  }
  try {
    walletStatus("Waiting for your wallet…");
    const signer = await eip1193Signer(ethereum);
    const chainId = await chainIdOf(ethereum);
    walletStatus("Sign the message in your wallet…");
    await client.signInWithEthereum(signer, { chainId, provider: ethereumWalletName(ethereum) });
    showError(null);
    walletStatus("");
  } catch (error) {
    walletFailed(error);
  }
  await refresh();
});

// Wallet Standard (https://github.com/wallet-standard/wallet-standard) wallets that can sign in with Solana.
const standardWallets = watchSolanaWallets();

function solanaWalletName(wallet) {
  const named = String(wallet.name ?? "").toLowerCase().replace(/[^a-z0-9_.-]/g, "").slice(0, 32);
  if (/^[a-z0-9]/.test(named)) return named;
  if (wallet.isPhantom) return "phantom";
  if (wallet.isSolflare) return "solflare";
  if (wallet.isBackpack) return "backpack";
  return "unknown";
}

// Sign In With Solana: a Wallet Standard wallet's solana:signIn first; else an injected provider
// (Phantom & co) through its signIn, or signMessage of the same text for older wallets.
$("siws").addEventListener("click", async () => {
  const standard = standardWallets.wallets()[0];
  const injected = window.phantom?.solana ?? window.solflare ?? window.backpack ?? window.solana;
  if (!standard && !injected) {
    walletStatus("No Solana wallet found. Install a browser wallet such as Phantom, then reload this page.");
    return;
  }
  try {
    walletStatus("Sign in with your wallet…");
    if (standard) {
      await signInWithStandardWallet(client, standard, { provider: solanaWalletName(standard) });
    } else {
      const issued = await client.siws.nonce();
      let address, message, signature;
      if (typeof injected.signIn === "function") {
        const output = await injected.signIn(issued.input);
        address = typeof output.address === "string" ? output.address : (output.address?.toBase58?.() ?? output.account?.address);
        message = new TextDecoder().decode(output.signedMessage);
        signature = base58Encode(output.signature);
      } else {
        const { publicKey } = await injected.connect();
        address = publicKey.toBase58();
        message = formatSiwsMessage(issued.input, address);
        signature = base58Encode((await injected.signMessage(new TextEncoder().encode(message), "utf8")).signature);
      }
      await client.siws.verify({ message, signature, address, provider: solanaWalletName(injected) });
    }
    showError(null);
    walletStatus("");
  } catch (error) {
    walletFailed(error);
  }
  await refresh();
});

refresh();

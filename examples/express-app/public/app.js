// The example page, on @erebus/client (the package's dist, served at /vendor/erebus-client/):
// asks the server who is signed in, and drives the sign-in forms. Signed in, the same buttons link
// another way to sign in to this person (a link intent: the proof attaches instead of signing in).
import { createErebusClient, ErebusError, IdentityLinkedElsewhereError, isLinkResult, ReauthRequiredError } from "/vendor/erebus-client/index.js";
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

// ---- people: link, merge, unlink ---------------------------------------------------------------

/**
 * "link" while a session is signed in: every sign-in button then proves another identity for this
 * person. "sign-in" when signed out, and while re-proving a stale session ("Sign in again").
 */
let mode = "sign-in";
let reauthing = false;

/** The options a sign-in helper takes for the current mode; `merge` only when the person chose it. */
const intentOptions = (merge = false) => (mode === "link" ? { intent: "link", ...(merge ? { merge: true } : {}) } : {});

function hideOffers() {
  $("merge-offer").hidden = true;
  $("reauth").hidden = true;
  $("link-status").hidden = true;
}

let pendingMerge = null;

/**
 * What a link attempt's refusal means to the person: the identity is someone else's (offer to merge,
 * which proves it afresh), or the session is too old to change who it is (sign in again first).
 * Answers true when it handled the error.
 */
function linkRefused(error, what, retryWithMerge) {
  if (error instanceof IdentityLinkedElsewhereError) {
    const n = error.identities;
    // The size when the server said it (a JSON answer does; an OAuth redirect back to the page may not).
    const size = typeof error.problem.identities === "number" ? ` (${n} identit${n === 1 ? "y" : "ies"})` : "";
    $("merge-offer-text").textContent =
      `${what} belongs to another person${size}. Merge that person into you? ` +
      "Everything of theirs becomes yours; you will be asked to prove it again.";
    pendingMerge = retryWithMerge;
    // Without a way to prove it again from here (an OAuth round trip that did not say which provider), no button.
    $("merge").hidden = !retryWithMerge;
    $("merge-offer").hidden = false;
    showError(null);
    return true;
  }
  if (error instanceof ReauthRequiredError) {
    $("reauth").hidden = false;
    showError(null);
    return true;
  }
  return false;
}

function showLinked(result) {
  const who = `${result.linked.network}:${result.linked.source_identifier}`;
  $("link-status").textContent =
    result.outcome === "merged" ? `Merged the person of ${who} into you.` : result.outcome === "reauthenticated" ? `${who} is already yours: confirmed it is you.` : `Linked ${who}.`;
  $("link-status").hidden = false;
}

/** Runs a sign-in or link attempt `run(options)`; a link's answer, a merge offer or a re-auth prompt shows on the page. */
async function prove(what, run, merge = false) {
  hideOffers();
  try {
    const result = await run(intentOptions(merge));
    showError(null);
    if (result && isLinkResult(result)) showLinked(result);
    return result;
  } catch (error) {
    if (linkRefused(error, what, () => prove(what, run, true))) return undefined;
    if (error instanceof ErebusError) {
      showError(error.problem);
      return undefined;
    }
    throw error;
  } finally {
    await refresh();
  }
}

$("merge").addEventListener("click", async () => {
  const retry = pendingMerge;
  pendingMerge = null;
  $("merge-offer").hidden = true;
  await retry?.();
});
$("merge-cancel").addEventListener("click", () => {
  pendingMerge = null;
  $("merge-offer").hidden = true;
});
$("reauth-start").addEventListener("click", () => {
  // The buttons sign in for one attempt; signing in with any identity of this person makes the
  // session fresh (a new session of the same person), and the page is back to linking.
  reauthing = true;
  $("reauth").hidden = true;
  render();
});

function identityItem(identity, own, last) {
  const li = document.createElement("li");
  li.dataset.identityId = identity.id;
  li.dataset.network = identity.network;
  const name = document.createElement("span");
  name.className = "id";
  name.textContent = `${identity.network}:${identity.source_identifier}`;
  const type = document.createElement("span");
  type.className = "muted";
  type.textContent = identity.type;
  li.append(name, type);
  if (identity.id === own) {
    const note = document.createElement("span");
    note.className = "muted this-session";
    note.textContent = "(this session)";
    li.append(note);
  } else if (!last) {
    const unlink = document.createElement("button");
    unlink.type = "button";
    unlink.className = "unlink";
    unlink.textContent = "Unlink";
    unlink.addEventListener("click", async () => {
      hideOffers();
      try {
        await client.unlink(identity.id);
        showError(null);
        $("link-status").textContent = `Unlinked ${identity.network}:${identity.source_identifier}; it is a person of its own now.`;
        $("link-status").hidden = false;
      } catch (error) {
        if (!linkRefused(error, name.textContent, null)) {
          if (!(error instanceof ErebusError)) throw error;
          showError(error.problem);
        }
      }
      await refresh();
    });
    li.append(unlink);
  }
  return li;
}

let current = null;

/** Core's default window for linking (10 minutes) against the session's last proof, as the server last said it. */
const FRESH_SECONDS = 600;
function sessionIsStale() {
  const at = Date.parse(current?.session?.authenticatedAt ?? "");
  return Number.isFinite(at) && Date.now() - at > FRESH_SECONDS * 1000;
}

/** Draws the sign-in section for the mode: the same buttons sign in, or link another way to sign in. */
function render() {
  const linking = current !== null && current.via === "session" && !reauthing;
  mode = linking ? "link" : "sign-in";
  $("sign-in-title").textContent = linking ? "Link another way to sign in" : reauthing && current ? "Sign in again" : "Sign in";
  $("link-hint").hidden = !linking;
  const verb = linking ? "Link" : "Sign in with";
  $("siwe").textContent = `${verb} Ethereum`;
  $("siws").textContent = `${verb} Solana`;
  $("email-label").textContent = linking ? "Link an email address" : "Sign in with email";
  const devLabel = document.querySelector("label[for=handle]");
  if (devLabel) devLabel.firstChild.textContent = linking ? "Link a development identity " : "Development sign-in ";
  renderOAuthButtons();
  // The page uses the widget's redirect style (GET /auth/telegram/callback → confirm page → form
  // POST), which carries no link intent: while linking, that button would switch accounts. The
  // provider itself links through POST /auth/telegram/verify?intent=link (the widget's JS callback).
  $("telegram-buttons").hidden = linking;
  // Passkeys: signed in, "Add a passkey" makes a new one for this person, and the other button
  // proves one the person already has elsewhere (it joins this person).
  $("passkey-sign-in").textContent = linking ? "Link a passkey you have" : "Sign in with a passkey";
  $("passkey-add").textContent = linking ? "Add a passkey" : "Sign up with a passkey";
}

async function refresh() {
  const body = await client.session().catch(() => null);
  current = body;
  if (body === null) reauthing = false;
  const signedIn = body !== null;
  $("identities").hidden = !(signedIn && body.person);
  if (signedIn && body.person) {
    const identities = body.person.identities;
    $("person-id").textContent = body.person.id;
    $("identity-list").replaceChildren(...identities.map((identity) => identityItem(identity, body.user.id, identities.length <= 1)));
  }
  render();
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
    // Linking takes its two-step shape: a ticket asked for under the link intent, then its proof.
    const handle = $("handle").value;
    if (mode === "sign-in") {
      await attempt(() => client.json("/auth/test/sign-in", { method: "POST", body: JSON.stringify({ handle }) }));
      reauthing = false;
      await refresh();
      return;
    }
    await prove(`test:${handle}`, async (options) => {
      const { ticket } = await client.json("/auth/test/start", { method: "POST", body: JSON.stringify({ handle, ...options }) });
      return client.json("/auth/test/verify", { method: "POST", body: JSON.stringify({ handle, ticket }) });
    });
  });
}

// ---- OAuth / OpenID Connect --------------------------------------------------------------------

let oauthProviders = [];

function renderOAuthButtons() {
  const links = oauthProviders.map((provider) => {
    const a = document.createElement("a");
    a.className = "button";
    // Linking: the provider's callback attaches its account to this person (the intent is kept
    // with the attempt's state, bound to this session).
    a.href = mode === "link" ? client.oauth.linkURL(provider.id, { returnTo: "/" }) : client.oauth.startURL(provider.id, { returnTo: "/" });
    a.textContent = `${mode === "link" ? "Link" : "Sign in with"} ${provider.label}`;
    a.dataset.provider = provider.id;
    // The redirect back after a refused link names no provider: remember which one this tab asked
    // for, so the merge offer can ask it again (with merge).
    a.addEventListener("click", (event) => {
      // The provider's start answers a stale session with a bare problem document (it is a
      // navigation, not a call): say what to do here instead. The server stays the judge.
      if (mode === "link" && sessionIsStale()) {
        event.preventDefault();
        hideOffers();
        $("reauth").hidden = false;
        return;
      }
      sessionStorage.setItem("erebus-linking", mode === "link" ? provider.id : "");
    });
    return a;
  });
  $("oauth-buttons").replaceChildren(...links);
}

async function loadOAuthButtons() {
  oauthProviders = await client.oauth.providers().catch(() => []);
  renderOAuthButtons();
}

// A failed OAuth sign-in or link comes back as /?error=ERR_… (a link refused because the account is
// another person's also names the provider and, when the server says, that person's size).
const query = new URLSearchParams(location.search);
const failed = query.get("error");
const linkingProvider = sessionStorage.getItem("erebus-linking");
sessionStorage.removeItem("erebus-linking");
if (failed === "ERR_IDENTITY_LINKED_ELSEWHERE") {
  const provider = query.get("provider") ?? linkingProvider;
  const identities = query.has("identities") ? Number(query.get("identities")) : undefined;
  const problem = { code: failed, title: "Linked elsewhere", status: 409, ...(Number.isInteger(identities) ? { identities } : {}) };
  const label = provider && /^[a-z0-9_-]{1,64}$/i.test(provider) ? `This ${provider} account` : "This account";
  const retry = provider && /^[a-z0-9_-]{1,64}$/i.test(provider) ? () => location.assign(client.oauth.linkURL(provider, { returnTo: "/", merge: true })) : null;
  linkRefused(new IdentityLinkedElsewhereError(problem), label, retry);
} else if (failed === "ERR_REAUTH_REQUIRED") {
  $("reauth").hidden = false;
} else if (failed && /^ERR_[A-Z_]+$/.test(failed)) {
  showError({ title: "Sign-in failed", code: failed });
}
loadOAuthButtons();

// ---- email ------------------------------------------------------------------------------------

$("email-start").addEventListener("submit", async (event) => {
  event.preventDefault();
  await startEmail(false);
});

/** Sends the link or code; under a link intent (and `merge` once the person chose it) it attaches instead. */
async function startEmail(merge) {
  const how = $("email-mode").value;
  hideOffers();
  let started;
  try {
    started = await client.email.start({ email: $("email").value, mode: how, ...intentOptions(merge) });
    showError(null);
  } catch (error) {
    // A stale session's link intent is refused at the start (ReauthRequiredError): say what to do.
    if (!linkRefused(error, "This address", null)) {
      if (!(error instanceof ErebusError)) throw error;
      showError(error.problem);
    }
  }
  $("email-status").hidden = !started;
  $("email-code").hidden = !(started && how === "code");
}

$("email-code").addEventListener("submit", async (event) => {
  event.preventDefault();
  const address = $("email").value;
  const done = await prove(`The address ${address}`, () => client.email.verify({ email: address, code: $("code").value }));
  // A merge needs a fresh proof: a new code, asked for with merge.
  if (!$("merge-offer").hidden) pendingMerge = () => startEmail(true);
  if (done) {
    $("email-code").hidden = true;
    $("email-status").hidden = true;
    $("code").value = "";
    reauthing = false;
  }
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
function walletFailed(error, what, retryWithMerge) {
  if (linkRefused(error, what, retryWithMerge)) {
    walletStatus("");
    return;
  }
  if (error instanceof ErebusError) {
    showError(error.problem);
    walletStatus(error.code === "ERR_SIWE_CHAIN_NOT_ALLOWED" ? "Switch your wallet to an allowed network and try again." : "Sign-in failed.");
  } else {
    walletStatus(`The wallet said: ${error?.message ?? error}`);
  }
}

// EIP-4361 with an EIP-1193 wallet: the server prepares the message (EIP-55 address included), the
// client checks it names this site, the wallet signs it.
$("siwe").addEventListener("click", () => signInWithEthereum(false));

/** Signs in, or links this wallet to the signed-in person (`merge`: take in its other person, after the offer). */
async function signInWithEthereum(merge) {
  hideOffers();
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
    const result = await client.signInWithEthereum(signer, { chainId, provider: ethereumWalletName(ethereum), ...intentOptions(merge) });
    showError(null);
    walletStatus("");
    if (isLinkResult(result)) showLinked(result);
    else reauthing = false;
  } catch (error) {
    walletFailed(error, "This Ethereum account", () => signInWithEthereum(true));
  }
  await refresh();
}

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
$("siws").addEventListener("click", () => signInWithSolana(false));

async function signInWithSolana(merge) {
  hideOffers();
  const standard = standardWallets.wallets()[0];
  const injected = window.phantom?.solana ?? window.solflare ?? window.backpack ?? window.solana;
  if (!standard && !injected) {
    walletStatus("No Solana wallet found. Install a browser wallet such as Phantom, then reload this page.");
    return;
  }
  try {
    walletStatus("Sign in with your wallet…");
    let result;
    if (standard) {
      result = await signInWithStandardWallet(client, standard, { provider: solanaWalletName(standard), ...intentOptions(merge) });
    } else {
      const issued = await client.siws.nonce(intentOptions(merge));
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
      result = await client.siws.verify({ message, signature, address, provider: solanaWalletName(injected) });
    }
    showError(null);
    walletStatus("");
    if (isLinkResult(result)) showLinked(result);
    else reauthing = false;
  } catch (error) {
    walletFailed(error, "This Solana account", () => signInWithSolana(true));
  }
  await refresh();
}

// ---- passkeys (WebAuthn, @simplewebauthn/browser) ------------------------------------------------

const webauthn = window.SimpleWebAuthnBrowser;
const passkeyStatus = (text) => {
  $("passkey-status").textContent = text;
};
const authJson = (path, body) => client.json(`/auth${path}`, { method: "POST", body: JSON.stringify(body) });
/** Shows the buttons when the browser has WebAuthn and the app mounts the passkey provider (not on an IP-address PUBLIC_URL). */
async function setUpPasskeys() {
  if (!webauthn?.browserSupportsWebAuthn()) return;
  const doc = await fetch("/auth/openapi.json").then((r) => r.json()).catch(() => null);
  $("passkey-buttons").hidden = !doc?.paths?.["/auth/passkey/options"];
  if (!$("passkey-buttons").hidden) startAutofill();
}

/** What a WebAuthn call threw (the person cancelled, no authenticator, …), for the status line. */
function passkeyFailed(error, what, retryWithMerge) {
  if (linkRefused(error, what, retryWithMerge)) return passkeyStatus("");
  if (error instanceof ErebusError) {
    showError(error.problem);
    return passkeyStatus("");
  }
  passkeyStatus(error?.name === "NotAllowedError" ? "Cancelled." : `The browser said: ${error?.message ?? error}`);
}

/** A discoverable sign-in (no user name): with `intent: "link"` it proves a passkey for this person instead. */
async function passkeyAssertion(options, useBrowserAutofill = false) {
  const { options: optionsJSON } = await authJson("/passkey/options", options);
  const response = await webauthn.startAuthentication({ optionsJSON, useBrowserAutofill });
  return authJson("/passkey/verify", { response });
}

$("passkey-sign-in").addEventListener("click", () => passkeySignIn(false));
async function passkeySignIn(merge) {
  hideOffers();
  passkeyStatus("Choose a passkey…");
  try {
    const result = await passkeyAssertion(intentOptions(merge));
    showError(null);
    passkeyStatus("");
    if (isLinkResult(result)) showLinked(result);
    else reauthing = false;
  } catch (error) {
    passkeyFailed(error, "This passkey", () => passkeySignIn(true));
  }
  await refresh();
  if (current === null) startAutofill();
}

// Signed out: a new person whose first identity is a new passkey. Signed in: a new passkey for this person.
$("passkey-add").addEventListener("click", async () => {
  hideOffers();
  passkeyStatus("Create the passkey…");
  try {
    const intent = mode === "link" ? "link" : "sign-up";
    const { options: optionsJSON } = await authJson("/passkey/register/options", { intent, ...($("email").value ? { userName: $("email").value } : {}) });
    const response = await webauthn.startRegistration({ optionsJSON });
    const result = await authJson("/passkey/register/verify", { response });
    showError(null);
    passkeyStatus(isLinkResult(result) ? "Passkey added." : "");
    if (isLinkResult(result)) showLinked(result);
  } catch (error) {
    passkeyFailed(error, "This passkey", null);
  }
  await refresh();
});

/** Conditional UI: while signed out, the email field's autofill offers this site's passkeys. */
async function startAutofill() {
  if (current !== null || !(await webauthn.browserSupportsWebAuthnAutofill())) return;
  try {
    await passkeyAssertion({}, true);
    showError(null);
    await refresh();
  } catch (error) {
    // Another ceremony (a button) cancels the waiting autofill request: that is not an error.
    if (error?.name !== "AbortError" && error instanceof ErebusError) showError(error.problem);
  }
}

refresh().then(setUpPasskeys);

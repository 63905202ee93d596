// The example page: asks the server who is signed in, and drives the sign-in forms.
const $ = (id) => document.getElementById(id);

async function api(path, init = {}) {
  const res = await fetch(path, {
    credentials: "same-origin",
    ...init,
    headers: { ...(init.body ? { "content-type": "application/json" } : {}), ...init.headers },
  });
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  return { res, body };
}

function showError(problem) {
  const el = $("error");
  el.textContent = problem ? `${problem.title ?? "Error"}${problem.detail ? `: ${problem.detail}` : ""} (${problem.code ?? problem.status})` : "";
  el.hidden = !problem;
}

async function refresh() {
  const { res, body } = await api("/auth/session");
  const signedIn = res.ok;
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
  const { res, body } = await api("/auth/api-keys");
  if (!res.ok) return showError(body);
  const rows = body.keys.map((key) => {
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
          const { res, body } = await api(`/auth/api-keys/${key.id}/rotate`, { method: "POST", body: JSON.stringify({ gracePeriodSeconds: graceSeconds }) });
          showError(res.ok ? null : body);
          if (res.ok) showNewKey(body, rotatedNote(graceSeconds, body));
          await loadKeys();
        });
        return rotate;
      });
      const revoke = document.createElement("button");
      revoke.textContent = "Revoke";
      revoke.className = "revoke";
      revoke.addEventListener("click", async () => {
        const { res, body } = await api(`/auth/api-keys/${key.id}`, { method: "DELETE" });
        showError(res.ok ? null : body);
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
  const { res, body } = await api("/auth/api-keys", {
    method: "POST",
    body: JSON.stringify({ name: $("key-name").value, scopes, ...(days ? { expiresInDays: Number(days) } : {}) }),
  });
  showError(res.ok ? null : body);
  if (res.ok) {
    showNewKey(body);
    $("key-name").value = "";
  }
  await loadKeys();
});

$("sign-out").addEventListener("click", async () => {
  await api("/auth/sign-out", { method: "POST" });
  showError(null);
  await refresh();
});

const devForm = $("dev-sign-in");
if (devForm) {
  devForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { res, body } = await api("/auth/test/sign-in", { method: "POST", body: JSON.stringify({ handle: $("handle").value }) });
    showError(res.ok ? null : body);
    await refresh();
  });
}

// ---- OAuth / OpenID Connect --------------------------------------------------------------------

async function loadOAuthButtons() {
  const { res, body } = await api("/auth/oauth");
  if (!res.ok) return;
  const links = body.providers.map((provider) => {
    const a = document.createElement("a");
    a.className = "button";
    a.href = `${provider.url}?returnTo=${encodeURIComponent("/")}`;
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
  const { res, body } = await api("/auth/email/start", { method: "POST", body: JSON.stringify({ email: $("email").value, mode }) });
  showError(res.ok ? null : body);
  $("email-status").hidden = !res.ok;
  $("email-code").hidden = !(res.ok && mode === "code");
});

$("email-code").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { res, body } = await api("/auth/email/verify", { method: "POST", body: JSON.stringify({ email: $("email").value, code: $("code").value }) });
  showError(res.ok ? null : body);
  if (res.ok) {
    $("email-code").hidden = true;
    $("email-status").hidden = true;
  }
  await refresh();
});

// ---- wallets ------------------------------------------------------------------------------------

const walletStatus = (text) => {
  $("wallet-status").textContent = text;
};

const toHex = (text) => "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function base58(bytes) {
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let out = "";
  while (n > 0n) {
    out = BASE58[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    out = "1" + out;
  }
  return out;
}

function ethereumWalletName(ethereum) {
  if (ethereum.isMetaMask) return "metamask";
  if (ethereum.isCoinbaseWallet) return "coinbase";
  if (ethereum.isRabby) return "rabby";
  if (ethereum.isBraveWallet) return "brave";
  return "unknown";
}

// EIP-4361 with an EIP-1193 wallet: the server prepares the message (EIP-55 address included), the wallet signs it.
$("siwe").addEventListener("click", async () => {
  const ethereum = window.ethereum;
  if (!ethereum) {
    walletStatus("No Ethereum wallet found. Install a browser wallet such as MetaMask, then reload this page.");
    return;
  }
  try {
    walletStatus("Waiting for your wallet…");
    const [address] = await ethereum.request({ method: "eth_requestAccounts" });
    const chainId = Number.parseInt(await ethereum.request({ method: "eth_chainId" }), 16);
    const nonce = await api("/auth/siwe/nonce", { method: "POST", body: JSON.stringify({ address, chainId }) });
    if (!nonce.res.ok) {
      showError(nonce.body);
      walletStatus(nonce.body?.code === "ERR_SIWE_CHAIN_NOT_ALLOWED" ? "Switch your wallet to an allowed network and try again." : "");
      return;
    }
    walletStatus("Sign the message in your wallet…");
    const signature = await ethereum.request({ method: "personal_sign", params: [toHex(nonce.body.message), address] });
    const { res, body } = await api("/auth/siwe/verify", {
      method: "POST",
      body: JSON.stringify({ message: nonce.body.message, signature, provider: ethereumWalletName(ethereum) }),
    });
    showError(res.ok ? null : body);
    walletStatus(res.ok ? "" : "Sign-in failed.");
    await refresh();
  } catch (error) {
    walletStatus(`The wallet said: ${error?.message ?? error}`);
  }
});

// Wallet Standard (https://github.com/wallet-standard/wallet-standard): wallets announce themselves
// through window events; keep the ones that can sign in with Solana.
const standardWallets = [];
function registerStandardWallets(...wallets) {
  for (const wallet of wallets) {
    if (wallet?.features?.["solana:signIn"] && !standardWallets.includes(wallet)) standardWallets.push(wallet);
  }
  return () => {};
}
window.addEventListener("wallet-standard:register-wallet", (event) => event.detail?.({ register: registerStandardWallets }));
window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: { register: registerStandardWallets } }));

/** A Wallet Standard wallet with solana:signIn first; else an injected provider (Phantom & co). */
function solanaWallet() {
  const standard = standardWallets[0];
  if (standard) {
    return {
      name: standard.name,
      async signIn(input) {
        const [output] = await standard.features["solana:signIn"].signIn(input);
        return { address: output.account.address, signedMessage: output.signedMessage, signature: output.signature };
      },
    };
  }
  return window.phantom?.solana ?? window.solflare ?? window.backpack ?? window.solana;
}

function solanaWalletName(wallet) {
  const named = String(wallet.name ?? "").toLowerCase().replace(/[^a-z0-9_.-]/g, "").slice(0, 32);
  if (/^[a-z0-9]/.test(named)) return named;
  if (wallet.isPhantom) return "phantom";
  if (wallet.isSolflare) return "solflare";
  if (wallet.isBackpack) return "backpack";
  return "unknown";
}

function siwsText(input, address) {
  let text = `${input.domain} wants you to sign in with your Solana account:\n${address}`;
  if (input.statement) text += `\n\n${input.statement}`;
  const labels = [["uri", "URI"], ["version", "Version"], ["chainId", "Chain ID"], ["nonce", "Nonce"], ["issuedAt", "Issued At"]];
  const fields = labels.filter(([key]) => input[key]).map(([key, label]) => `${label}: ${input[key]}`);
  return fields.length ? `${text}\n\n${fields.join("\n")}` : text;
}

// Sign In With Solana: the wallet's signIn (Phantom and Wallet Standard wallets) signs the server's input as is;
// older wallets get the same text through signMessage.
$("siws").addEventListener("click", async () => {
  const wallet = solanaWallet();
  if (!wallet) {
    walletStatus("No Solana wallet found. Install a browser wallet such as Phantom, then reload this page.");
    return;
  }
  try {
    const nonce = await api("/auth/siws/nonce", { method: "POST" });
    if (!nonce.res.ok) return showError(nonce.body);
    walletStatus("Sign in with your wallet…");
    let address, message, signature;
    if (typeof wallet.signIn === "function") {
      const output = await wallet.signIn(nonce.body.input);
      address = typeof output.address === "string" ? output.address : (output.address?.toBase58?.() ?? output.account?.address);
      message = new TextDecoder().decode(output.signedMessage);
      signature = base58(output.signature);
    } else {
      const { publicKey } = await wallet.connect();
      address = publicKey.toBase58();
      message = siwsText(nonce.body.input, address);
      signature = base58((await wallet.signMessage(new TextEncoder().encode(message), "utf8")).signature);
    }
    const { res, body } = await api("/auth/siws/verify", {
      method: "POST",
      body: JSON.stringify({ message, signature, address, provider: solanaWalletName(wallet) }),
    });
    showError(res.ok ? null : body);
    walletStatus(res.ok ? "" : "Sign-in failed.");
    await refresh();
  } catch (error) {
    walletStatus(`The wallet said: ${error?.message ?? error}`);
  }
});

refresh();

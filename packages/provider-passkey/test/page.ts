/**
 * A minimal page for the Chromium test: sign up, sign in (button and conditional UI / autofill),
 * add a passkey, list and delete, with @simplewebauthn/browser's UMD bundle (SimpleWebAuthnBrowser).
 */
export const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Passkeys</title><script src="/vendor/simplewebauthn-browser.js"></script></head>
<body>
<p id="status">Loading…</p>
<p id="error"></p>
<form id="autofill" onsubmit="return false"><input id="username" name="username" autocomplete="username webauthn"></form>
<button id="sign-up">Sign up with a passkey</button>
<button id="sign-in">Sign in with a passkey</button>
<button id="add">Add a passkey</button>
<button id="sign-out">Sign out</button>
<ul id="passkeys"></ul>
<p id="conditional"></p>
<script>
const { startRegistration, startAuthentication, browserSupportsWebAuthnAutofill } = SimpleWebAuthnBrowser;
const $ = (id) => document.getElementById(id);
async function post(path, body) {
  const res = await fetch("/auth" + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) });
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(json.code + ": " + (json.detail ?? json.title));
  return json;
}
async function refresh() {
  const res = await fetch("/auth/session");
  if (res.status !== 200) { $("status").textContent = "Not signed in."; $("passkeys").replaceChildren(); return null; }
  const { user, person } = await res.json();
  $("status").textContent = "Signed in as " + user.network + ":" + user.source_identifier + " (person " + person.id + ", " + person.identities.length + " identities)";
  const { passkeys } = await (await fetch("/auth/passkey/credentials")).json();
  $("passkeys").replaceChildren(...passkeys.map((p) => {
    const li = document.createElement("li");
    li.dataset.id = p.id;
    li.textContent = p.name + " ";
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "delete";
    del.onclick = () => run(async () => { await fetch("/auth/passkey/credentials/" + p.id, { method: "DELETE" }).then(async (r) => { if (!r.ok) throw new Error((await r.json()).code); }); });
    li.append(del);
    return li;
  }));
  return user;
}
async function run(fn) {
  $("error").textContent = "";
  try { await fn(); } catch (e) { $("error").textContent = String(e.message ?? e); }
  await refresh();
}
async function register(body) {
  const { options } = await post("/passkey/register/options", body);
  const response = await startRegistration({ optionsJSON: options });
  await post("/passkey/register/verify", { response });
}
async function signIn(useBrowserAutofill) {
  const { options } = await post("/passkey/options");
  const response = await startAuthentication({ optionsJSON: options, useBrowserAutofill });
  await post("/passkey/verify", { response });
}
$("sign-up").onclick = () => run(() => register({ intent: "sign-up", userName: "ada@example.com" }));
$("add").onclick = () => run(() => register({ intent: "link" }));
$("sign-in").onclick = () => run(() => signIn(false));
$("sign-out").onclick = () => run(() => post("/sign-out"));
(async () => {
  const user = await refresh();
  // Conditional UI: offered on the username field while nobody is signed in.
  if (!user && await browserSupportsWebAuthnAutofill()) {
    $("conditional").textContent = "waiting";
    signIn(true).then(() => { $("conditional").textContent = "signed in"; return refresh(); }, (e) => { $("conditional").textContent = "ended: " + e.name; });
  }
})();
</script>
</body></html>`;

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
}

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

refresh();

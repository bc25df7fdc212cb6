// The doctor's sign-in form.
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";

const form = document.getElementById("login-form");
const email = document.getElementById("login-email");
const password = document.getElementById("login-password");
const error = document.getElementById("login-error");
const submit = form.querySelector('[type="submit"]');
const idleLabel = submit.textContent;

function showError(text) {
  error.textContent = text;
  error.hidden = false;
  for (const input of [email, password]) input.setAttribute("aria-invalid", "true");
}

function clearError() {
  error.hidden = true;
  error.textContent = "";
  for (const input of [email, password]) input.removeAttribute("aria-invalid");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  submit.disabled = true;
  submit.textContent = submit.dataset.busyLabel || idleLabel;
  let leaving = false;
  try {
    await api("/api/login", {
      method: "POST",
      body: { email: email.value.trim(), password: password.value },
      csrf: false,
    });
    leaving = true;
    window.location.assign("/doctor");
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 401 || err.code === "invalid_credentials") {
      showError(t("login.error.invalid"));
      password.value = "";
      password.focus();
    } else if (err.status === 429 || err.code === "rate_limited") {
      showError(t("login.error.rate_limited"));
    } else if (err.code === "network") {
      showError(t("error.network"));
    } else {
      showError(t("error.generic"));
    }
  } finally {
    if (!leaving) {
      submit.disabled = false;
      submit.textContent = idleLabel;
    }
  }
});

for (const input of [email, password]) input.addEventListener("input", clearError);

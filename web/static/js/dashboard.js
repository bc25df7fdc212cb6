// The doctor's dashboard: create a consultation, copy the links, follow the invitation mails, resend an invitation
// (to a corrected address if need be), cancel a consultation and follow its notices, list them. Modules in
// ./dashboard/: the creation form, the list and its rows, the actions in a row, the month's billing, each
// consultation's documents and prescriptions (downloaded, a prescription revoked), each consultation's audit trail.
import { api } from "./api.js";
import { RowActions } from "./dashboard/actions.js";
import { MonthBilling } from "./dashboard/billing.js";
import { NewConsultation } from "./dashboard/create.js";
import { ConsultationTrail } from "./dashboard/audit.js";
import { ConsultationDocuments } from "./dashboard/documents.js";
import { ConsultationList } from "./dashboard/list.js";

function goToLogin() {
  window.location.assign("/login");
}

const documents = new ConsultationDocuments({ onUnauthorized: goToLogin });
const trail = new ConsultationTrail({ onUnauthorized: goToLogin });
const list = new ConsultationList({ onUnauthorized: goToLogin, documents, trail });
const creation = new NewConsultation({ onCreated: () => list.refresh(), onUnauthorized: goToLogin });
new RowActions(list, creation, goToLogin).start();
creation.start();

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("/api/logout", { method: "POST" });
  } catch {
    // Going to the login page is right whatever happened.
  }
  goToLogin();
});

list.start();
new MonthBilling({ onUnauthorized: goToLogin }).start();
